"""The chat page in headless Chromium: ask, stream the answer, open a citation, see the highlighted span.

Needs the Debian packages `chromium` and `chromium-driver` (CI installs them) and the `selenium` package. The driver
is given explicitly so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from api.deps import build_service
from api.main import create_app
from qa.ingest.document import document_from_text

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
QUESTION = "古塔区固定资产投资完成多少"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs /usr/bin/chromium and /usr/bin/chromedriver "
                              "(apt-get install chromium chromium-driver)"),
]


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install selenium")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,900", f"--user-data-dir={tmp_path / 'profile'}",
                     "--lang=zh-CN"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_ask_stream_and_open_a_citation(browser, server_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(server_url + "/")
    assert browser.title.startswith("文档问答")
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "已收录 5 篇文档"))
    # The document filter lists the documents from GET /v1/documents.
    wait.until(lambda d: len(Select(d.find_element(By.ID, "doc-filter")).options) == 6)

    browser.find_element(By.ID, "question").send_keys(QUESTION)
    browser.find_element(By.ID, "send").click()

    answer = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".msg.assistant .bubble .cite")))
    bubble = browser.find_element(By.CSS_SELECTOR, ".msg.assistant .bubble")
    assert "10.4亿元" in bubble.text and "[1]" in bubble.text
    assert browser.find_element(By.CSS_SELECTOR, ".msg.user .bubble").text == QUESTION

    answer.click()
    panel = wait.until(ec.visibility_of_element_located((By.ID, "panel")))
    mark = panel.find_element(By.CSS_SELECTOR, "#panel-text mark")
    assert "10.4亿元" in mark.text
    assert "一、提高政治站位" in panel.find_element(By.ID, "panel-section").text
    assert "《在全区统筹推进疫情防控" in panel.find_element(By.ID, "panel-doc").text
    assert "第" in panel.find_element(By.ID, "panel-where").text

    screenshot = tmp_path / "chat_page.png"
    assert browser.save_screenshot(str(screenshot))
    shutil.copyfile(screenshot, "/tmp/chat_page.png")

    # A follow-up in the same conversation, then an unanswerable question, then an unreachable service.
    browser.find_element(By.ID, "question").send_keys("那规模以上增加值呢")
    browser.find_element(By.ID, "send").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant .bubble .cite")) >= 2
               and "38.1亿元" in d.find_elements(By.CSS_SELECTOR, ".msg.assistant .bubble")[-1].text)
    assert "结合上文" in browser.find_elements(By.CSS_SELECTOR, ".msg.assistant .bubble")[-1].text


def test_unknown_answer_and_unreachable_service_are_explained(browser, server_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(server_url + "/")
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "已收录"))
    browser.find_element(By.ID, "question").send_keys("古塔区的GDP总量是多少亿元")
    browser.find_element(By.ID, "send").click()
    unknown = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".msg.assistant.unknown .bubble .cite")))
    bubble = browser.find_element(By.CSS_SELECTOR, ".msg.assistant.unknown .bubble")
    assert "不知道" in bubble.text and "没有找到确切的答案" in bubble.text
    assert unknown.text == "[1]"

    # Point the page's fetches at a closed port: the user sees an "unreachable" message, not a silent failure.
    browser.execute_script("""
        const realFetch = window.fetch;
        window.fetch = (url, init) => realFetch(String(url).replace(/^\\//, 'http://127.0.0.1:9/'), init);
    """)
    browser.find_element(By.ID, "question").send_keys(QUESTION)
    browser.find_element(By.ID, "send").click()
    error = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".msg.error .bubble")))
    assert "无法连接到问答服务" in error.text


def test_server_text_is_never_parsed_as_html(browser, copy_settings, serve_app):
    """A document whose title and text hold markup shows it as text in the citation panel."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    xss_settings = copy_settings
    private = build_service(xss_settings)
    private.load()
    text = "<img src=x onerror=\"document.body.dataset.pwned='1'\">红枫岭隧道工程于三月贯通。<b>粗体</b>"
    private.add_document(document_from_text(text, "xss.txt", title="<script>window.pwned=1</script>标题"))
    with serve_app(create_app(xss_settings, service=private)) as url:
        wait = WebDriverWait(browser, 20)
        browser.get(url + "/")
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "已收录 6 篇文档"))
        browser.find_element(By.ID, "question").send_keys("红枫岭隧道工程什么时候贯通")
        browser.find_element(By.ID, "send").click()
        cite = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".msg.assistant .bubble .cite")))
        cite.click()
        panel_text = wait.until(ec.visibility_of_element_located((By.ID, "panel-text")))
        assert "<img src=x" in panel_text.text and "<b>粗体</b>" in panel_text.text
        assert "<script>" in browser.find_element(By.ID, "panel-doc").text
        assert browser.find_elements(By.CSS_SELECTOR, "#panel-text img, #panel-text b, #log img") == []
        assert browser.execute_script("return document.body.dataset.pwned || window.pwned || null") is None


def test_knowledge_base_selector(browser, copy_settings, serve_app, tmp_path):
    """The selector lists one entry per knowledge base (the models); choosing one filters documents and answers."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    fire = Path(__file__).resolve().parent.parent / "data" / "tiny" / "b_forest_fire_notice.txt"
    settings = copy_settings.model_copy(update={"data_dir": tmp_path / "data"})
    with serve_app(create_app(settings)) as url:
        assert httpx.post(url + "/v1/knowledge_bases", json={"name": "fire"}).status_code == 201
        assert httpx.post(url + "/v1/knowledge_bases/fire/documents",
                          json={"text": fire.read_text(encoding="utf-8")}, timeout=60).status_code == 201
        wait = WebDriverWait(browser, 20)
        browser.get(url + "/")
        wait.until(lambda d: len(Select(d.find_element(By.ID, "kb-select")).options) == 2)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "doc-filter")).options) == 6)
        Select(browser.find_element(By.ID, "kb-select")).select_by_value("zhqa-retrieval/fire")
        wait.until(lambda d: len(Select(d.find_element(By.ID, "doc-filter")).options) == 2)
        browser.find_element(By.ID, "question").send_keys("全区森林防火期从哪天开始")
        browser.find_element(By.ID, "send").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".msg.assistant .bubble .cite")))
        assert "2023年11月1日" in browser.find_element(By.CSS_SELECTOR, ".msg.assistant .bubble").text
