"""Full-text search: `_text` over the narrative, `_content` over all of a resource's text.

https://hl7.org/fhir/R4/search.html#text and #content -- PostgreSQL full-text search
(a GIN index over to_tsvector('simple')) or SQLite LIKE over the folded words; the same
results on both for these word queries.
"""

from __future__ import annotations

import base64

import pytest
from django.db import connection

from fhir_api.store import repository
from fhir_search.models import FullTextIndex
from fhir_search.params.text import documents, parse_text, text_condition, tsquery
from tests.fhir_search.conftest import store

pytestmark = pytest.mark.django_db


def narrated(html: str, **extra) -> str:
    div = f'<div xmlns="http://www.w3.org/1999/xhtml">{html}</div>'
    return store({"resourceType": "Condition", "subject": {"reference": "Patient/p"},
                  "text": {"status": "generated", "div": div}, **extra})


def test_text_finds_words_of_the_narrative_without_its_markup(search):
    headache = narrated("Severe <b>headache</b> since Monday")
    narrated("Fever")
    assert search.ids("/Condition", {"_text": "headache"}) == [headache]
    assert search.ids("/Condition", {"_text": "b"}) == []  # tag names are not text


def test_text_is_case_and_accent_insensitive(search):
    cafe = narrated("Allergic to CAFÉ au lait")
    assert search.ids("/Condition", {"_text": "cafe"}) == [cafe]
    assert search.ids("/Condition", {"_text": "Café"}) == [cafe]


def test_text_decodes_html_entities(search):
    both = narrated("Nausea &amp; vomiting &lt;3 days")
    assert search.ids("/Condition", {"_text": "vomiting"}) == [both]
    assert search.ids("/Condition", {"_text": "amp"}) == []


def test_text_matches_whole_words_only(search):
    narrated("Headache")
    assert search.ids("/Condition", {"_text": "head"}) == []


def test_every_word_must_appear(search):
    both = narrated("chest pain on exertion")
    narrated("chest infection")
    assert search.ids("/Condition", {"_text": "pain chest"}) == [both]


def test_quoted_words_must_appear_in_that_order(search):
    ordered = narrated("sharp chest pain")
    narrated("pain in the chest")
    assert search.ids("/Condition", {"_text": '"chest pain"'}) == [ordered]


def test_a_leading_minus_excludes_a_word(search):
    narrated("chest pain")
    infection = narrated("chest infection")
    assert search.ids("/Condition", {"_text": "chest -pain"}) == [infection]


def test_commas_or_the_queries(search):
    a = narrated("fever")
    b = narrated("cough")
    narrated("rash")
    assert search.idset("/Condition", {"_text": "fever,cough"}) == {a, b}


def test_text_ignores_content_outside_the_narrative(search):
    coded = narrated("a condition", code={"text": "Migraine"})
    assert search.ids("/Condition", {"_text": "migraine"}) == []
    assert search.ids("/Condition", {"_content": "migraine"}) == [coded]


def test_content_covers_strings_codes_numbers_and_the_narrative(search):
    obs = store({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]},
        "valueQuantity": {"value": 120, "unit": "mmHg"},
        "note": [{"text": "Measured after exercise"}],
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Bumped</div>'},
    })
    for query in ("systolic", "exercise", "mmhg", "120", "8480", "bumped", '"blood pressure"'):
        assert search.ids("/Observation", {"_content": query}) == [obs], query


def test_content_leaves_out_base64_data_and_the_resource_type(search):
    payload = base64.b64encode(b"secretword " * 4).decode()
    doc = store({
        "resourceType": "DocumentReference", "status": "current",
        "content": [{"attachment": {"contentType": "text/plain", "data": payload, "title": "Discharge letter"}}],
    })
    assert search.ids("/DocumentReference", {"_content": "letter"}) == [doc]
    assert search.ids("/DocumentReference", {"_content": payload}) == []
    assert search.ids("/DocumentReference", {"_content": "documentreference"}) == []


def test_an_update_replaces_the_text_and_a_delete_removes_it(search):
    cid = narrated("fever")
    content = repository.read("Condition", cid).content
    content["text"]["div"] = '<div xmlns="http://www.w3.org/1999/xhtml">cough</div>'
    repository.update("Condition", cid, content)
    assert search.ids("/Condition", {"_text": "fever"}) == []
    assert search.ids("/Condition", {"_text": "cough"}) == [cid]
    repository.delete("Condition", cid)
    assert search.ids("/Condition", {"_text": "cough"}) == []


def test_content_in_a_system_search_spans_types(search):
    patient = store({"resourceType": "Patient", "name": [{"family": "Quixote"}]})
    condition = narrated("Seen by Dr Quixote")
    store({"resourceType": "Patient", "name": [{"family": "Panza"}]})
    assert search.idset("", {"_content": "quixote"}) == {patient, condition}


def test_text_combines_with_other_parameters(search):
    active = narrated("fever", clinicalStatus={"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]})
    narrated("fever")
    assert search.ids("/Condition", {"_text": "fever", "clinical-status": "active"}) == [active]


def test_a_query_without_words_is_a_bad_request(search):
    narrated("fever")
    outcome = search.bundle("/Condition", {"_text": "-fever"}, status=400)
    assert "no word" in outcome["issue"][0]["diagnostics"]
    search.bundle("/Condition", {"_text": "..."}, status=400)


def test_documents_are_folded_words_between_spaces():
    docs = documents({
        "resourceType": "Patient", "id": "x1", "meta": {"versionId": "1"},
        "text": {"status": "generated", "div": "<div>Zoë&nbsp;O'Brien</div>"},
        "name": [{"family": "Wells-Smith"}], "active": True,
    })
    assert docs["_text"] == " zoe o brien "
    assert docs["_content"] == " zoe o brien wells smith "


def test_the_postgres_query_is_built_from_words_only():
    query = parse_text('chest "sharp pain" -fever x&y')
    assert tsquery(query) == "chest & (sharp <-> pain) & !fever & (x <-> y)"


@pytest.mark.postgres
def test_postgres_finds_words_through_the_gin_index(search):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    for i in range(30):
        narrated(f"routine visit number {i}")
    wanted = narrated("rare zygomycosis")
    rows = FullTextIndex.objects.filter(code="_text", resource_type="Condition").filter(
        text_condition(parse_text("zygomycosis"))
    )
    sql, params = rows.values("resource_id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the choice visible
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "fulltext_text_tsv" in plan
    assert search.ids("/Condition", {"_text": "zygomycosis"}) == [wanted]
