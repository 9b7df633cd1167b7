"""F&O rules that need no server: how an answer is classified, the ``$batch`` wire format both
ways, the keys, the token scope and the line prices."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from woo2d365.erp.financeoperations import token_settings
from woo2d365.erp.financeoperations.client import (
    BatchOperation,
    build_changeset,
    classify,
    infolog,
    is_duplicate_key,
    parse_batch_response,
)
from woo2d365.erp.financeoperations.payload import _price, order_reference
from woo2d365.erp.odata_client import AnsweredInDoubt, TransientError
from woo2d365.errors import (
    DocumentInDoubt,
    DocumentRefused,
    DynamicsAuthenticationError,
    DynamicsError,
    OrderDataError,
)
from woo2d365.sandbox.fo_odata import parse_batch
from woo2d365.settings import DynamicsSettings

WRITE_ERROR = json.dumps(
    {
        "error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {
                "message": "Write failed for table row of type 'SalesOrderLineV2Entity'. Infolog: "
                "Warning: Item X-1 is stopped for sales..",
                "type": "Microsoft.Dynamics.Platform.Integration.Services.OData."
                "AxODataWriteException",
                "stacktrace": "   at Microsoft.Dynamics.Ax.Xpp.Secret(Stack)",
            },
        }
    }
)


def test_a_write_exception_is_a_data_error_whatever_its_status_and_shows_the_infolog() -> None:
    for status in (400, 500):
        problem = classify(status, WRITE_ERROR, method="POST")
        assert isinstance(problem, DocumentRefused), status
        assert not problem.retryable
        assert "Item X-1 is stopped for sales" in problem.message
        assert "Secret(Stack)" not in problem.message, "no stack trace"
        assert infolog(problem) == "Warning: Item X-1 is stopped for sales.."


def test_a_server_error_without_a_write_exception_ran_and_rolled_back_or_is_in_doubt() -> None:
    body = json.dumps({"error": {"code": "", "message": "An error has occurred."}})
    assert isinstance(classify(500, body, method="POST"), AnsweredInDoubt)
    assert type(classify(504, "<html>Gateway Timeout</html>", method="POST")) is DocumentInDoubt
    read = classify(500, body, method="GET")
    assert isinstance(read, TransientError) and read.retryable


def test_throttling_and_gateway_faults_were_not_processed_and_carry_retry_after() -> None:
    for status in (429, 502, 503):
        problem = classify(status, "", method="POST", retry_after=60)
        assert isinstance(problem, TransientError)
        assert problem.retry_after == 60


def test_401_explains_the_f_and_o_app_registration() -> None:
    problem = classify(401, "", method="GET")
    assert isinstance(problem, DynamicsAuthenticationError)
    assert "Microsoft Entra applications" in problem.message
    assert "fo_url" in problem.message


def test_an_unroutable_url_is_a_configuration_problem_not_retried() -> None:
    body = json.dumps({"Message": "No HTTP resource was found that matches the request URI 'x'."})
    problem = classify(404, body, method="GET")
    assert isinstance(problem, DynamicsError) and not problem.retryable
    assert "fo_url" in problem.message


def test_a_duplicate_key_is_recognised_from_the_infolog() -> None:
    duplicate = DocumentRefused(
        "Write failed … Infolog: Info: Cannot create a record in Sales orders (SalesTable). "
        "Sales order: WC-1, C1.\nThe record already exists.."
    )
    assert is_duplicate_key(duplicate)
    assert not is_duplicate_key(DocumentRefused("Customer C1 is stopped for All."))


def test_the_changeset_the_tool_sends_is_the_multipart_f_and_o_reads() -> None:
    operations = [
        BatchOperation("SalesOrderHeadersV2", {"dataAreaId": "usmf", "SalesOrderNumber": "WC-1"}),
        BatchOperation("SalesOrderLines", {"dataAreaId": "usmf", "ItemNumber": "A", "X": 1.5}),
    ]
    content_type, body = build_changeset("https://fo.example/data", operations)
    assert body.count(b"\n") == body.count(b"\r\n"), "CRLF line ends"
    parts = parse_batch(content_type, body)
    assert len(parts) == 1 and parts[0].changeset
    requests = parts[0].requests
    assert [(r.method, r.url, r.content_id) for r in requests] == [
        ("POST", "https://fo.example/data/SalesOrderHeadersV2", "1"),
        ("POST", "https://fo.example/data/SalesOrderLines", "2"),
    ]
    assert json.loads(requests[1].body) == operations[1].body


def test_every_part_of_a_batch_answer_is_read_a_failed_changeset_is_one_error_part() -> None:
    text = (
        "--batchresponse_1\r\n"
        "Content-Type: multipart/mixed; boundary=changesetresponse_2\r\n\r\n"
        "--changesetresponse_2\r\n"
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        "Content-ID: 1\r\n\r\n"
        "HTTP/1.1 500 Internal Server Error\r\n"
        "Content-Type: application/json; odata.metadata=minimal\r\nOData-Version: 4.0\r\n\r\n"
        f"{WRITE_ERROR}\r\n"
        "--changesetresponse_2--\r\n"
        "--batchresponse_1--\r\n"
    )
    groups = parse_batch_response("multipart/mixed; boundary=batchresponse_1", text)
    assert len(groups) == 1 and len(groups[0]) == 1
    part = groups[0][0]
    assert part.status == 500 and part.content_id == "1"
    assert isinstance(classify(part.status, part.text, method="POST"), DocumentRefused)


def test_a_throttled_changeset_part_carries_its_own_retry_after() -> None:
    text = (
        "--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n"
        "Content-Type: application/http\r\nContent-ID: 1\r\n\r\n"
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\n\r\n\r\n--c--\r\n--b--\r\n"
    )
    part = parse_batch_response("multipart/mixed; boundary=b", text)[0][0]
    assert part.status == 429 and part.retry_after == 30


def test_a_batch_answer_that_is_not_multipart_leaves_the_create_in_doubt() -> None:
    with pytest.raises(AnsweredInDoubt):
        parse_batch_response("application/json", "{}")


def test_the_token_scope_is_the_environment_url_lower_case_without_trailing_slash() -> None:
    settings = DynamicsSettings(fo_url="https://Contoso.Operations.Dynamics.com/")
    assert token_settings(settings).scope == "https://contoso.operations.dynamics.com/.default"


def test_keys_f_and_o_cannot_match_exactly_or_hold_are_order_errors() -> None:
    assert order_reference("wc-", "1001", own_numbers=True) == "WC-1001"
    with pytest.raises(OrderDataError, match="wildcard"):
        order_reference("WC*", "1", own_numbers=True)
    with pytest.raises(OrderDataError, match="SalesOrderNumber"):
        order_reference("WEBSHOP-ORDER-", "12345678", own_numbers=True)
    assert order_reference("WEBSHOP-ORDER-", "12345678", own_numbers=False)


@given(
    quantity=st.integers(min_value=1, max_value=999),
    cents=st.integers(min_value=0, max_value=10_000_000),
)
def test_the_line_amount_f_and_o_computes_is_the_shop_line_total_to_the_cent(
    quantity: int, cents: int
) -> None:
    amount = Decimal(cents) / 100
    price = _price(Decimal(quantity), amount)
    per = Decimal(str(price.get("SalesPriceQuantity", 1)))
    line_amount = (Decimal(quantity) * Decimal(str(price["SalesPrice"])) / per).quantize(
        Decimal("0.01")
    )
    assert line_amount == amount
