"""Optional upstream LLM (any OpenAI-compatible server) that words the reply from the cited passages.

Off unless QA_LLM_BASE_URL is set. The LLM sees only the question and the numbered passages the retriever found, so
its citations [n] match ours; any failure (timeout, HTTP error, odd body) falls back to the extractive reply.
"""

from __future__ import annotations

import logging

import httpx
from pydantic import SecretStr

from qa.config import Settings
from qa.types import Answer

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "你是一个文档问答助手。只根据下面编号的资料回答用户的问题，在用到的句子后用 [编号] 标注出处。"
    "如果资料中没有答案，就回答“不知道”，并说明资料里最接近的内容。回答要简洁，用中文。"
)


def build_messages(questions: list[str], answer: Answer) -> list[dict[str, str]]:
    """The chat messages sent upstream: the instructions, then the question(s) and the numbered passages."""
    sources = "\n\n".join(
        f"[{i}] 《{hit.passage.doc_title}》 {' > '.join(hit.passage.section_path)}\n{hit.passage.text}"
        for i, hit in enumerate(answer.hits, start=1)
    )
    asked = questions[-1]
    if len(questions) > 1:
        earlier = "\n".join(f"- {q}" for q in questions[:-1])
        asked = f"{asked}\n（之前的问题：\n{earlier}）"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"问题：{asked}\n\n资料：\n{sources or '（没有找到相关资料）'}"},
    ]


def llm_reply(settings: Settings, questions: list[str], answer: Answer) -> str | None:
    """Ask the upstream LLM for the reply text; None when it is not configured or fails.

    Args:
        settings: reads llm_base_url, llm_model, llm_api_key, llm_timeout_s.
        questions: the user's questions in order, the last one being answered.
        answer: the service's answer, whose hits are the numbered sources.

    Returns:
        The LLM's reply text, or None (not configured, unreachable, timed out, error status, unexpected body).
    """
    if not settings.llm_base_url:
        return None
    url = settings.llm_base_url.rstrip("/") + "/chat/completions"
    key = settings.llm_api_key
    secret = key.get_secret_value() if isinstance(key, SecretStr) else key
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    payload = {"model": settings.llm_model or "default", "messages": build_messages(questions, answer),
               "stream": False, "temperature": 0.2}
    try:
        response = httpx.post(url, json=payload, headers=headers, timeout=settings.llm_timeout_s)
        response.raise_for_status()
        text = response.json()["choices"][0]["message"]["content"]
    except httpx.HTTPError as e:
        logger.warning("upstream LLM at %s failed (%s); using the extractive reply", url, e)
        return None
    except (ValueError, KeyError, IndexError, TypeError) as e:
        logger.warning("upstream LLM at %s sent an unexpected body (%r); using the extractive reply", url, e)
        return None
    if not isinstance(text, str) or not text.strip():
        logger.warning("upstream LLM at %s sent an empty reply; using the extractive reply", url)
        return None
    return text.strip()
