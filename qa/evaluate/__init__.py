"""Offline evaluation: question sets in (`questions`), a run over them (`run`), metrics (`metrics`), reports (`report`)."""
