"""Chinese document question answering: ingestion, outline, passages, hybrid retrieval, answers, evaluation."""
