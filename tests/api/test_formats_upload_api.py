"""Uploads of Word and PDF files go through the same reading as `qa index`: searchable, with pages for PDFs."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPORT = ("一、总体情况\n今年以来，青柠湾片区新建口袋公园十二处，居民满意度明显提升。\n"
          "二、下步打算\n明年计划在青柠湾片区再建口袋公园八处，并完善夜间照明设施。\n")


def _converters():
    name = "bench_formats_eval_for_api"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "formats_eval.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _top(client, query: str) -> dict:
    response = client.post("/v1/search", json={"query": query, "top_k": 3, "mode": "bm25"})
    assert response.status_code == 200, response.text
    return response.json()["hits"][0]


def test_docx_and_pdf_uploads_are_read_outlined_and_searchable(make_client, tmp_path):
    convert = _converters()
    docx, pdf = tmp_path / "report.docx", tmp_path / "plan.pdf"
    convert.txt_to_docx(REPORT, docx)
    convert.txt_to_pdf(REPORT.replace("青柠湾", "白鹭洲"), pdf)
    with make_client() as client:
        for path, mime in ((docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
                           (pdf, "application/pdf")):
            upload = client.post("/v1/documents", files={"file": (path.name, path.read_bytes(), mime)})
            assert upload.status_code == 201, upload.text
            detail = client.get(f"/v1/documents/{upload.json()['document']['id']}").json()
            assert [s["title"] for s in detail["sections"]] == ["一、总体情况", "二、下步打算"]
        word_hit = _top(client, "青柠湾片区新建口袋公园多少处")
        assert "十二处" in word_hit["text"] and word_hit["page"] is None
        pdf_hit = _top(client, "白鹭洲明年计划再建口袋公园几处")
        assert "八处" in pdf_hit["text"] and pdf_hit["page"] == 1


def test_a_file_whose_extension_lies_is_refused_with_the_reason(make_client):
    with make_client() as client:
        response = client.post("/v1/documents", files={"file": ("fake.pdf", REPORT.encode("utf-8"), "application/pdf")})
        assert response.status_code == 422, response.text
        assert "fake.pdf" in response.json()["detail"]
