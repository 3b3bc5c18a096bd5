"""The XML format and its mapping to the JSON form.

https://hl7.org/fhir/R4/xml.html and https://hl7.org/fhir/R4/json.html -- the same content
in both formats; primitives, element ids, extension urls, narrative and contained
resources map as those pages say, and hostile XML (DTDs, entities) is refused.
"""
from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import orjson
import pytest

from fhir_api.store import fhir_xml, jsonio
from fhir_api.store.errors import BadRequest
from tests.fhir_api.examples import examples

F = "{http://hl7.org/fhir}"
XHTML_DIV = '<div xmlns="http://www.w3.org/1999/xhtml">'
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


def _patient(content: str) -> str:
    return f'<Patient xmlns="http://hl7.org/fhir">{content}</Patient>'


def _exact_json(value: Any) -> bytes:
    """JSON text with sorted keys: tells 1 from true and 1.50 from 1.5, unlike dict ==."""

    def default(v: Any) -> Any:
        if isinstance(v, jsonio.Decimal):
            return orjson.Fragment(v.literal)
        raise TypeError(type(v))

    return orjson.dumps(value, default=default, option=orjson.OPT_SORT_KEYS)


def _examples() -> list[tuple[str, dict]]:
    """The specification's examples (tests/fixtures/examples-json.tar.gz), decimals exact."""
    return [(name, jsonio.loads(raw)) for name, raw in examples()]


def _refused(xml: bytes | str) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        fhir_xml.loads(xml.encode() if isinstance(xml, str) else xml)
    assert info.value.status == 400
    return info.value


# -- round trip over the official examples -------------------------------------------------


@pytest.mark.parametrize("pretty", [False, True], ids=["compact", "pretty"])
def test_every_official_example_survives_json_to_xml_to_json(pretty: bool) -> None:
    examples = _examples()
    assert len(examples) == 2459
    failures = []
    for name, resource in examples:
        try:
            back = fhir_xml.loads(fhir_xml.dumps(resource, pretty=pretty))
        except BadRequest as exc:
            failures.append(f"{name}: {exc}")
            continue
        if _exact_json(back) != _exact_json(resource):
            failures.append(f"{name}: differs after the round trip")
    assert failures == []


def test_xml_of_an_example_is_well_formed_and_in_the_fhir_namespace() -> None:
    resource = dict(_examples())["patient-example.json"]
    root = ElementTree.fromstring(fhir_xml.dumps(resource))
    assert root.tag == F + "Patient"
    assert root.find(F + "id").get("value") == "example"


# -- XML -> JSON -----------------------------------------------------------------------------

HAND_WRITTEN_PATIENT = """<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://hl7.org/fhir ../../schema/patient.xsd">
  <!-- comments are not content -->
  <id value="pat1"/>
  <meta>
    <versionId value="3"/>
  </meta>
  <text>
    <status value="generated"/>
    <div xmlns="http://www.w3.org/1999/xhtml"><p>Jim <b>Chalmers</b> &amp; co</p></div>
  </text>
  <contained>
    <Organization>
      <id value="org1"/>
      <name value="Acme"/>
    </Organization>
  </contained>
  <extension url="http://example.org/fhir/StructureDefinition/score">
    <valueDecimal value="1.50"/>
  </extension>
  <active value="true"/>
  <name id="n1">
    <family value="Chalmers"/>
    <given value="Peter"/>
    <given id="g2">
      <extension url="http://hl7.org/fhir/StructureDefinition/data-absent-reason">
        <valueCode value="masked"/>
      </extension>
    </given>
    <given value="James"/>
  </name>
  <gender value="male"/>
  <birthDate id="bd" value="1974-12-25">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1974-12-25T14:35:45-05:00"/>
    </extension>
  </birthDate>
  <multipleBirthInteger value="2"/>
  <communication>
    <language>
      <text value="Dutch"/>
    </language>
    <preferred value="false"/>
  </communication>
  <managingOrganization>
    <reference value="#org1"/>
  </managingOrganization>
</Patient>
"""

EXPECTED_PATIENT = {
    "resourceType": "Patient",
    "id": "pat1",
    "meta": {"versionId": "3"},
    "text": {
        "status": "generated",
        "div": XHTML_DIV + "<p>Jim <b>Chalmers</b> &amp; co</p></div>",
    },
    "contained": [{"resourceType": "Organization", "id": "org1", "name": "Acme"}],
    "extension": [{"url": "http://example.org/fhir/StructureDefinition/score", "valueDecimal": 1.50}],
    "active": True,
    "name": [
        {
            "id": "n1",
            "family": "Chalmers",
            "given": ["Peter", None, "James"],
            "_given": [
                None,
                {
                    "id": "g2",
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                            "valueCode": "masked",
                        }
                    ],
                },
                None,
            ],
        }
    ],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": {
        "id": "bd",
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1974-12-25T14:35:45-05:00",
            }
        ],
    },
    "multipleBirthInteger": 2,
    "communication": [{"language": {"text": "Dutch"}, "preferred": False}],
    "managingOrganization": {"reference": "#org1"},
}


def test_hand_written_patient_with_extensions_on_primitives_parses_to_the_json_form() -> None:
    parsed = fhir_xml.loads(HAND_WRITTEN_PATIENT.encode())
    assert parsed == EXPECTED_PATIENT
    # Booleans, integers and the decimal's exact text, which == alone would not check.
    assert _exact_json(parsed) == _exact_json(EXPECTED_PATIENT).replace(b"1.5}", b"1.50}")


def test_json_form_written_back_as_xml_reads_the_same() -> None:
    assert fhir_xml.loads(fhir_xml.dumps(EXPECTED_PATIENT)) == EXPECTED_PATIENT


def test_decimal_keeps_its_exact_text() -> None:
    obs = fhir_xml.loads(
        b'<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="x"/></code>'
        b'<valueQuantity><value value="100.000"/><unit value="mg"/></valueQuantity></Observation>'
    )
    value = obs["valueQuantity"]["value"]
    assert isinstance(value, jsonio.Decimal) and value.literal == "100.000"
    assert b'"value":100.000' in jsonio.dumps(obs)
    assert b'<value value="100.000"/>' in fhir_xml.dumps(obs)


def test_single_occurrence_of_a_repeating_element_is_still_an_array() -> None:
    patient = fhir_xml.loads(
        b'<Patient xmlns="http://hl7.org/fhir"><name><given value="A"/></name></Patient>'
    )
    assert patient == {"resourceType": "Patient", "name": [{"given": ["A"]}]}


def test_bundle_entry_resource_is_unwrapped() -> None:
    bundle = fhir_xml.loads(
        b'<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/><entry>'
        b'<fullUrl value="urn:uuid:1"/><resource><Patient><id value="p"/></Patient></resource>'
        b"</entry></Bundle>"
    )
    assert bundle["entry"] == [{"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "id": "p"}}]


# -- JSON -> XML -----------------------------------------------------------------------------


def test_document_starts_with_the_xml_declaration_and_fhir_namespace() -> None:
    xml = fhir_xml.dumps({"resourceType": "Patient", "id": "p"})
    assert xml == DECLARATION + _patient('<id value="p"/>').encode()


def test_elements_are_written_in_definition_order_whatever_the_json_order() -> None:
    patient = {
        "managingOrganization": {"display": "Acme", "reference": "Organization/1"},
        "birthDate": "2000-01-01",
        "name": [{"given": ["A"], "family": "B", "use": "official"}],
        "active": True,
        "id": "p",
        "resourceType": "Patient",
    }
    root = ElementTree.fromstring(fhir_xml.dumps(patient))
    assert [child.tag.removeprefix(F) for child in root] == [
        "id", "active", "name", "birthDate", "managingOrganization"
    ]
    assert [child.tag.removeprefix(F) for child in root.find(F + "name")] == ["use", "family", "given"]
    assert [child.tag.removeprefix(F) for child in root.find(F + "managingOrganization")] == [
        "reference", "display"
    ]


def test_element_id_and_extension_url_are_attributes_but_resource_id_is_an_element() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p",
        "name": [{"id": "n1", "family": "B"}],
        "extension": [{"id": "e1", "url": "http://example.org/x", "valueBoolean": True}],
    }
    root = ElementTree.fromstring(fhir_xml.dumps(patient))
    assert root.find(F + "id").get("value") == "p"
    assert root.find(F + "name").get("id") == "n1"
    extension = root.find(F + "extension")
    assert (extension.get("id"), extension.get("url")) == ("e1", "http://example.org/x")
    assert extension.find(F + "valueBoolean").get("value") == "true"


def test_contained_resource_is_wrapped_in_an_element_named_by_its_type() -> None:
    patient = {"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o"}]}
    root = ElementTree.fromstring(fhir_xml.dumps(patient))
    assert root.find(F + "contained/" + F + "Organization/" + F + "id").get("value") == "o"


def test_line_breaks_and_markup_in_values_survive_as_references() -> None:
    patient = {"resourceType": "Patient", "name": [{"text": 'a\n\tb & <c> "d"\r'}]}
    xml = fhir_xml.dumps(patient)
    assert b"&#10;&#9;b &amp; &lt;c&gt; &quot;d&quot;&#13;" in xml
    assert fhir_xml.loads(xml) == patient


def test_pretty_output_indents_but_reads_the_same() -> None:
    xml = fhir_xml.dumps(EXPECTED_PATIENT, pretty=True)
    assert b'\n  <id value="pat1"/>\n' in xml
    assert fhir_xml.loads(xml) == EXPECTED_PATIENT


def test_unknown_json_property_is_refused() -> None:
    with pytest.raises(BadRequest, match="nickname"):
        fhir_xml.dumps({"resourceType": "Patient", "nickname": "Jim"})


def test_unknown_resource_type_is_refused_both_ways() -> None:
    with pytest.raises(BadRequest, match="Patientt"):
        fhir_xml.dumps({"resourceType": "Patientt"})
    _refused('<Patientt xmlns="http://hl7.org/fhir"/>')
    _refused('<Patient xmlns="http://hl7.org/fhir"><contained><Foo/></contained></Patient>')


def test_characters_xml_cannot_carry_are_refused() -> None:
    with pytest.raises(BadRequest, match="U\\+0001"):
        fhir_xml.dumps({"resourceType": "Patient", "name": [{"text": "a\x01"}]})


# -- narrative -------------------------------------------------------------------------------


def test_narrative_div_from_json_is_embedded_as_xhtml_and_read_back_unchanged() -> None:
    div = XHTML_DIV + '<p class="x">A &lt; B &amp; caf\u00e9<br/><img src="a.png" alt="" /></p>\n'
    div += "  <table/></div>"
    patient = {"resourceType": "Patient", "text": {"status": "generated", "div": div}}
    xml = fhir_xml.dumps(patient, pretty=True)
    assert div.encode() in xml
    root = ElementTree.fromstring(xml)
    assert root.find(F + "text/{http://www.w3.org/1999/xhtml}div/{http://www.w3.org/1999/xhtml}p") is not None
    assert fhir_xml.loads(xml) == patient


def test_narrative_div_from_xml_is_kept_byte_for_byte() -> None:
    div = XHTML_DIV + "<p title='single quotes'>x&#160;y<br /></p></div>"
    xml = (
        '<Patient xmlns="http://hl7.org/fhir"><text><status value="generated"/>' + div + "</text></Patient>"
    ).encode()
    patient = fhir_xml.loads(xml)
    assert patient["text"]["div"] == div
    assert div.encode() in fhir_xml.dumps(patient)


def test_prefixed_xhtml_div_becomes_the_plain_json_form() -> None:
    xml = (
        b'<Patient xmlns="http://hl7.org/fhir" xmlns:h="http://www.w3.org/1999/xhtml"><text>'
        b'<status value="generated"/><h:div><h:p xml:lang="en">a &amp; b<h:br/></h:p></h:div>'
        b"</text></Patient>"
    )
    assert fhir_xml.loads(xml)["text"]["div"] == XHTML_DIV + '<p xml:lang="en">a &amp; b<br/></p></div>'


def test_sloppy_stored_narrative_still_gives_well_formed_xml() -> None:
    for div, expected in [
        ("<div>no namespace</div>", XHTML_DIV + "no namespace</div>"),
        (XHTML_DIV + "a&nbsp;b</div>", XHTML_DIV + "a&#160;b</div>"),
        ("plain <text>", XHTML_DIV + "plain &lt;text&gt;</div>"),
    ]:
        xml = fhir_xml.dumps({"resourceType": "Patient", "text": {"status": "generated", "div": div}})
        assert expected.encode() in xml
        ElementTree.fromstring(xml)


# -- refused XML -----------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE Patient [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Patient xmlns="http://hl7.org/fhir"><name><text value="&lol9;"/></name></Patient>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><name><text value="&xxe;"/></name></Patient>
"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE Patient SYSTEM "http://example.org/evil.dtd">
<Patient xmlns="http://hl7.org/fhir"/>
"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY % remote SYSTEM "http://example.org/evil.dtd"> %remote;]>
<Patient xmlns="http://hl7.org/fhir"/>
"""


@pytest.mark.parametrize(
    "xml",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITY, "<!DOCTYPE Patient>" + _patient("")],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "plain-doctype"],
)
def test_dtds_and_entity_declarations_are_refused(xml: str) -> None:
    error = _refused(xml)
    assert error.code == "structure"
    assert "DTD" in error.diagnostics


@pytest.mark.parametrize(
    "xml",
    [
        b"",
        b"not xml at all",
        b'<Patient xmlns="http://hl7.org/fhir"><id value="p"/>',
        b'<Patient xmlns="http://hl7.org/fhir"><id value="p"></Patient>',
        b'<Patient xmlns="http://hl7.org/fhir"><id value="a & b"/></Patient>',
        b'<Patient xmlns="http://hl7.org/fhir"/><Patient xmlns="http://hl7.org/fhir"/>',
        b'<Patient xmlns="http://hl7.org/fhir"><name><text value="&nbsp;"/></name></Patient>',
        b'<Patient xmlns="http://hl7.org/fhir"><name><text value="\xff\xfe"/></name></Patient>',
    ],
    ids=[
        "empty", "text", "unclosed", "mismatched",
        "bare-ampersand", "two-roots", "undefined-entity", "bad-utf8",
    ],
)
def test_malformed_xml_is_refused(xml: bytes) -> None:
    assert _refused(xml).code == "structure"


@pytest.mark.parametrize(
    "xml, message",
    [
        (_patient('<nickname value="Jim"/>'), "nickname"),
        (_patient('<name><middle value="J"/></name>'), "middle"),
        (_patient('<birthDate value="2000"><id value="x"/></birthDate>'), "id"),
        (_patient('<deceasedString value="x"/>'), "deceasedString"),
        (_patient('<name><id value="n"/></name>'), "id"),
    ],
    ids=["resource", "datatype", "inside-primitive", "choice-type-not-allowed", "element-id-as-element"],
)
def test_elements_unknown_to_the_definition_are_refused(xml: str, message: str) -> None:
    error = _refused(xml)
    assert error.code == "structure"
    assert message in error.diagnostics


@pytest.mark.parametrize(
    "xml",
    [
        "<Patient/>",
        '<Patient xmlns="http://hl7.org/fhir/other"/>',
        _patient('<active xmlns="urn:x" value="true"/>'),
        _patient('<text><status value="generated"/><div>x</div></text>'),
        _patient('<text><status xmlns="http://www.w3.org/1999/xhtml" value="generated"/></text>'),
    ],
    ids=[
        "no-namespace", "other-namespace", "child-in-other-namespace", "div-in-fhir-namespace", "xhtml-status"
    ],
)
def test_elements_in_the_wrong_namespace_are_refused(xml: str) -> None:
    assert "namespace" in _refused(xml).diagnostics


@pytest.mark.parametrize(
    "xml",
    [
        _patient('<active value="yes"/>'),
        _patient('<multipleBirthInteger value="1.5"/>'),
        _patient('<extension url="u"><valueDecimal value="01"/></extension>'),
        _patient('<extension url="u"><valueDecimal value="NaN"/></extension>'),
    ],
    ids=["boolean", "integer", "decimal-leading-zero", "decimal-nan"],
)
def test_primitive_values_that_json_cannot_carry_are_refused(xml: str) -> None:
    _refused(xml)


def test_text_inside_fhir_elements_is_refused() -> None:
    assert "Text" in _refused(_patient("<active>true</active>")).diagnostics


def test_unknown_attribute_is_refused() -> None:
    assert "colour" in _refused(_patient('<active colour="x"/>')).diagnostics


def test_single_element_given_twice_is_refused() -> None:
    _refused(_patient('<active value="true"/><active value="false"/>'))
    _refused(_patient('<deceasedBoolean value="true"/><deceasedDateTime value="2000"/>'))


def test_resource_wrapper_holding_two_resources_is_refused() -> None:
    _refused(_patient("<contained><Patient/><Patient/></contained>"))
