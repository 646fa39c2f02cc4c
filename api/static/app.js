// Chat page for the zhqa API. No build step, no libraries. Every server-provided string is inserted with
// textContent / createTextNode, never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const log = $("log");
  const form = $("ask-form");
  const input = $("question");
  const sendButton = $("send");
  const docFilter = $("doc-filter");
  const kbSelect = $("kb-select");
  const DEFAULT_MODEL = "zhqa-retrieval";
  const statusEl = $("status");
  const keyInput = $("api-key");
  const KEY_STORAGE = "zhqa.apiKey";

  // The conversation sent with every request (the API is stateless, like OpenAI's).
  let history = [];
  let busy = false;

  keyInput.value = localStorage.getItem(KEY_STORAGE) || "";

  function headers(extra = {}) {
    const h = { ...extra };
    const key = (localStorage.getItem(KEY_STORAGE) || "").trim();
    if (key) h["Authorization"] = "Bearer " + key;
    return h;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function addMessage(role, text) {
    const wrap = el("div", "msg " + role);
    const bubble = el("div", "bubble", text);
    wrap.appendChild(bubble);
    log.appendChild(wrap);
    scrollDown();
    return { wrap, bubble };
  }

  async function errorMessage(response) {
    let detail = "";
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    } catch (_) {
      detail = response.statusText;
    }
    if (response.status === 401) return "需要有效的 API 密钥（在右上角“设置”中填写）。" + (detail ? "（" + detail + "）" : "");
    if (response.status === 503) return "服务暂时不可用：" + detail;
    return "请求失败（" + response.status + "）：" + detail;
  }

  function unreachable(err) {
    return "无法连接到问答服务，请确认服务已启动、网络正常后重试。（" + (err && err.message ? err.message : err) + "）";
  }

  // --- status and document filter ------------------------------------------------------------------------------

  async function loadStatus() {
    try {
      const response = await fetch("/health", { headers: headers() });
      const body = await response.json();
      if (response.ok && body.index_loaded) {
        statusEl.textContent = "已收录 " + body.documents + " 篇文档，" + body.passages + " 个段落";
        statusEl.className = "status ok";
      } else {
        statusEl.textContent = "服务不可用：" + (body.error || response.statusText);
        statusEl.className = "status down";
      }
    } catch (err) {
      statusEl.textContent = "无法连接到服务";
      statusEl.className = "status down";
    }
  }

  // One chat model per knowledge base: `zhqa-retrieval` answers from `default`, `zhqa-retrieval/<name>` from <name>.
  function knowledgeBaseOf(model) {
    return model.startsWith(DEFAULT_MODEL + "/") ? model.slice(DEFAULT_MODEL.length + 1) : "default";
  }

  function documentsPath() {
    const kb = knowledgeBaseOf(kbSelect.value || DEFAULT_MODEL);
    return kb === "default" ? "/v1/documents" : "/v1/knowledge_bases/" + encodeURIComponent(kb) + "/documents";
  }

  async function loadKnowledgeBases() {
    try {
      const response = await fetch("/v1/models", { headers: headers() });
      if (!response.ok) return;
      const body = await response.json();
      const chosen = kbSelect.value;
      while (kbSelect.options.length) kbSelect.remove(0);
      for (const model of body.data) {
        const kb = knowledgeBaseOf(model.id);
        const option = el("option", null, kb === "default" ? "默认知识库" : kb);
        option.value = model.id;
        kbSelect.appendChild(option);
      }
      if ([...kbSelect.options].some((o) => o.value === chosen)) kbSelect.value = chosen;
    } catch (_) {
      // The status line already says the service is unreachable.
    }
  }

  async function loadDocuments() {
    while (docFilter.options.length > 1) docFilter.remove(1);
    try {
      const response = await fetch(documentsPath(), { headers: headers() });
      if (!response.ok) return;
      const body = await response.json();
      for (const doc of body.documents) {
        const option = el("option", null, doc.title);
        option.value = doc.id;
        option.title = doc.source;
        docFilter.appendChild(option);
      }
    } catch (_) {
      // The status line already says the service is unreachable.
    }
  }

  // --- citations panel -----------------------------------------------------------------------------------------

  function showCitation(citation, button) {
    document.querySelectorAll(".cite.active").forEach((b) => b.classList.remove("active"));
    if (button) button.classList.add("active");
    $("panel").hidden = false;
    $("panel-title").textContent = "引用 [" + citation.rank + "]";
    $("panel-doc").textContent = "《" + citation.doc_title + "》";
    $("panel-section").textContent = citation.section_path.length ? citation.section_path.join(" > ") : "（正文）";
    const where = ["第 " + (citation.paragraph_index + 1) + " 段"];
    if (citation.page) where.unshift("第 " + citation.page + " 页");
    where.push("字符 " + citation.char_start + "–" + citation.char_end);
    $("panel-where").textContent = where.join(" · ");

    const box = $("panel-text");
    box.replaceChildren();
    // Offsets count Unicode code points (Python str indices); Array.from splits by code point too.
    const chars = Array.from(citation.text);
    const span = citation.answer_span;
    if (span && span.end > span.start) {
      box.appendChild(document.createTextNode(chars.slice(0, span.start).join("")));
      box.appendChild(el("mark", null, chars.slice(span.start, span.end).join("")));
      box.appendChild(document.createTextNode(chars.slice(span.end).join("")));
    } else {
      box.textContent = citation.text;
    }
    const mark = box.querySelector("mark");
    if (mark) mark.scrollIntoView({ block: "nearest" });
  }

  // Render reply text with each [n] that has a citation as a button opening the passage.
  function renderReply(bubble, content, citations, retrieval) {
    bubble.replaceChildren();
    bubble.classList.remove("pending");
    if (retrieval && !retrieval.answerable) {
      bubble.appendChild(el("span", "note", "文档中没有找到确切的答案，下面列出的是最接近的内容，仅供参考。"));
    }
    const pattern = /\[(\d+)\]/g;
    let last = 0;
    let match;
    while ((match = pattern.exec(content)) !== null) {
      const citation = citations[Number(match[1]) - 1];
      if (!citation) continue;
      bubble.appendChild(document.createTextNode(content.slice(last, match.index)));
      const button = el("button", "cite", "[" + match[1] + "]");
      button.type = "button";
      button.title = "《" + citation.doc_title + "》 " + citation.section_path.join(" > ");
      button.addEventListener("click", () => showCitation(citation, button));
      bubble.appendChild(button);
      last = match.index + match[0].length;
    }
    bubble.appendChild(document.createTextNode(content.slice(last)));
    if (retrieval && retrieval.followup) {
      // Say how the follow-up was read, and in which document when it was kept inside the previous answer's one.
      const inDoc = retrieval.doc_ids && retrieval.doc_ids.length === 1 && citations.length
        ? "在《" + citations[0].doc_title + "》中" : "";
      bubble.appendChild(el("span", "rewritten", "（结合上文，" + inDoc + "按“" + retrieval.query + "”查找）"));
    }
  }

  // --- asking --------------------------------------------------------------------------------------------------

  async function ask(question) {
    busy = true;
    sendButton.disabled = true;
    addMessage("user", question);
    const messages = [...history, { role: "user", content: question }];
    const { wrap, bubble } = addMessage("assistant", "");
    bubble.classList.add("pending");

    const body = { model: kbSelect.value || DEFAULT_MODEL, messages, stream: true };
    if (docFilter.value) body.doc_ids = [docFilter.value];

    let content = "";
    let citations = [];
    let retrieval = null;
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
      });
      if (!response.ok) {
        wrap.className = "msg error";
        bubble.classList.remove("pending");
        bubble.textContent = await errorMessage(response);
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder("utf-8");
      let buffer = "";
      let done = false;
      while (!done) {
        const { value, done: finished } = await reader.read();
        if (finished) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          for (const line of event.split("\n")) {
            if (!line.startsWith("data:")) continue;
            const data = line.slice(5).trim();
            if (data === "[DONE]") { done = true; break; }
            const chunk = JSON.parse(data);
            const choice = chunk.choices && chunk.choices[0];
            if (choice && choice.delta && choice.delta.content) {
              content += choice.delta.content;
              bubble.textContent = content;
              scrollDown();
            }
            if (chunk.citations) citations = chunk.citations;
            if (chunk.retrieval) retrieval = chunk.retrieval;
          }
        }
      }
      const unknown = (retrieval && !retrieval.answerable) || content.startsWith("不知道");
      if (unknown) wrap.classList.add("unknown");
      renderReply(bubble, content, citations, retrieval);
      history = [...messages, { role: "assistant", content }];
    } catch (err) {
      wrap.className = "msg error";
      bubble.classList.remove("pending");
      bubble.textContent = unreachable(err);
    } finally {
      busy = false;
      sendButton.disabled = false;
      scrollDown();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question || busy) return;
    input.value = "";
    ask(question);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  document.querySelectorAll(".example").forEach((button) => {
    button.addEventListener("click", () => {
      input.value = button.dataset.question;
      input.focus();
    });
  });

  function newConversation() {
    history = [];
    log.querySelectorAll(".msg").forEach((node) => node.remove());
    $("panel").hidden = true;
  }

  $("clear").addEventListener("click", newConversation);

  // Another knowledge base: a new conversation (follow-ups refer to the earlier answers) and its documents.
  kbSelect.addEventListener("change", () => {
    newConversation();
    docFilter.value = "";
    loadDocuments();
  });

  $("panel-close").addEventListener("click", () => { $("panel").hidden = true; });

  $("save-key").addEventListener("click", () => {
    const key = keyInput.value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
    loadStatus();
    loadKnowledgeBases().then(loadDocuments);
  });

  loadStatus();
  loadKnowledgeBases().then(loadDocuments);
})();
