"""The row rules of a ``data:`` transaction source as one Ibis definition: the first reason each parsed row breaks.

:func:`rule_conditions` lists the rules in :data:`~tiercast.pipeline.ingest.common.REASONS` order as Ibis
conditions over the parsed rows (canonical fields, plus ``_price``, ``_numbers_ok`` and ``_duplicate``), and
:func:`reason` makes the CASE that gives the first one failing (NULL: accepted). The Spark ingestion
(:mod:`tiercast.pipeline.ingest.spark_ingest`) runs it compiled for Spark. DuckDB's ingestion
(:mod:`tiercast.pipeline.ingest.sql`) keeps its hand-tuned SQL of the same rules (a CASE over the same parsed
columns, with the cheap pre-tests that keep DuckDB's Unicode ``trim`` off most rows), so its output stays what it
was; the tests run this definition over DuckDB's parsed rows and check it gives the SQL's reason on every row.

The parsed rows' columns (what each engine's parsing provides):

* ``customer_id``, ``order_id`` (when mapped), ``product_id``: text, stripped, missing markers NULL;
* ``timestamp``: naive, NULL where it does not parse; ``amount`` (and ``quantity``): DOUBLE;
* ``_ts_ambiguous``: the timestamp is a day-month text date and no ``timestamp_format`` is set;
* ``_price``: the unit price (only with a ``unit_price`` mapping), NULL where it does not parse;
* ``_duplicate``: an exact copy of an earlier source row (only with ``duplicates: quarantine``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pandas as pd

from tiercast.features.contract import AMOUNT, CUSTOMER_ID, ORDER_ID, PRODUCT_ID, QUANTITY, TIMESTAMP
from tiercast.pipeline.ingest.columns import _BLANKS
from tiercast.pipeline.ingest.common import AMBIGUOUS

#: The characters Python's ``str.strip()`` removes, as a regular-expression class both RE2 (DuckDB) and Java
#: (Spark) read.
BLANK_CLASS = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _BLANKS) + "]"
PRICE = "_price"
DUPLICATE = "_duplicate"


@dataclass(frozen=True)
class RuleSet:
    """Which rules apply to a source: what is mapped and what the source's settings ask."""

    order_id: bool  # an order column is mapped (else the order id is made up and never missing)
    quantity: bool
    unit_price: bool  # amount = quantity x unit price; zero_price then tests the unit price and the amount
    non_product_codes: tuple[str, ...]
    zero_price: bool
    duplicates: bool
    run_date: pd.Timestamp | None

    @classmethod
    def of(cls, src, mapped: Mapping[str, str], run_date: pd.Timestamp | None) -> RuleSet:
        """The rules of ``src`` (a :class:`~tiercast.pipeline.ingest.sources.TransactionSource`) with its mapped
        fields ``mapped``."""
        return cls(
            order_id=ORDER_ID in mapped,
            quantity=QUANTITY in mapped,
            unit_price="unit_price" in mapped,
            non_product_codes=tuple(src.non_product_codes) if PRODUCT_ID in mapped else (),
            zero_price=src.zero_amounts == "quarantine",
            duplicates=src.duplicates == "quarantine",
            run_date=run_date,
        )


def rule_conditions(t: ir.Table, rules: RuleSet) -> list[tuple[str, ir.BooleanValue]]:
    """(reason, condition) in rule order; a row gets the first reason whose condition is true (NULL is not)."""
    conditions = [
        ("missing_customer", t[CUSTOMER_ID].isnull()),
        ("ambiguous_timestamp", t[AMBIGUOUS].fill_null(False)),
        ("unparseable_timestamp", t[TIMESTAMP].isnull()),
        ("non_numeric_amount", ~numbers_ok(t, rules)),
    ]
    if rules.order_id:
        conditions.append(("missing_order_id", t[ORDER_ID].isnull()))
    if rules.non_product_codes:
        conditions.append(("non_product_code", t[PRODUCT_ID].isin(rules.non_product_codes)))
    if rules.zero_price:
        # with a unit price, a line of quantity 0 (0 x 10.00) is an amount of 0 as much as a price of 0 is
        conditions.append(("zero_price", (t[PRICE] <= 0) | (t[AMOUNT] == 0) if rules.unit_price else t[AMOUNT] == 0))
    if rules.run_date is not None:
        when = ibis.literal(rules.run_date.to_pydatetime(), type=dt.timestamp)
        conditions.append(("future_timestamp", t[TIMESTAMP] > when))
    if rules.duplicates:
        conditions.append(("duplicate", t[DUPLICATE]))
    # The transaction schema's row checks (ids non-empty without surrounding blanks, finite numbers), which the
    # rules above already imply: a row failing them would be a parsing bug, quarantined rather than fed on.
    texts = [CUSTOMER_ID, *([ORDER_ID] if rules.order_id else [])]
    schema = [(t[c] == "") | t[c].re_search(f"^{BLANK_CLASS}|{BLANK_CLASS}$") for c in texts]
    schema += [t[c].isinf() | t[c].isnan() for c in (AMOUNT, *([QUANTITY] if rules.quantity else []))]
    conditions.append(("schema", ibis.or_(*schema)))
    return conditions


def reason(t: ir.Table, rules: RuleSet) -> ir.StringValue:
    """The first rule each row of ``t`` breaks, NULL for an accepted row."""
    cases = [(cond, ibis.literal(name)) for name, cond in rule_conditions(t, rules)]
    return ibis.cases(*cases, else_=ibis.null("string"))


def numbers_ok(t: ir.Table, rules: RuleSet) -> ir.BooleanValue:
    """Every number of the row (amount, quantity, unit price) parsed, finite and of magnitude below 1e24."""
    numbers = [AMOUNT, *([QUANTITY] if rules.quantity else []), *([PRICE] if rules.unit_price else [])]
    return ibis.and_(*(good_number(t[c]) for c in numbers))


def good_number(x: ir.FloatingValue) -> ir.BooleanValue:
    """A number of magnitude below 1e24 (NULL and NaN are not: NaN compares above every number on both
    engines)."""
    return (x.abs() < 1e24).fill_null(False)
