"""Name and value tables ``tiercast init`` matches a file's columns and texts against (see :mod:`.starter`)."""

from __future__ import annotations

import re

from tiercast.features.contract import AMOUNT, CATEGORY, CHANNEL, CUSTOMER_ID, ORDER_ID, PRODUCT_ID, QUANTITY, TIMESTAMP

UNIT_PRICE = "unit_price"


def norm_name(name: str) -> str:
    """A column name as the tables below write it: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


# Normalized column names (lower case, letters and digits only) tried for each field, best first. E-commerce exports
# (Shopify: 'Email', 'Created at', 'Total', 'Lineitem quantity'; WooCommerce: 'billing_email', 'order_total',
# 'date_created') come after the plain names, so a file with both keeps the plain mapping.
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    CUSTOMER_ID: (
        "customerid",
        "customer",
        "custid",
        "clientid",
        "client",
        "userid",
        "memberid",
        "accountid",
        "customeruniqueid",
        "buyerid",
        "shopperid",
        "email",
        "customeremail",
        "billingemail",
        "emailaddress",
    ),
    TIMESTAMP: (
        TIMESTAMP,
        "invoicedate",
        "orderdate",
        "transactiondate",
        "purchasedate",
        "date",
        "datetime",
        "orderpurchasetimestamp",
        "createdat",
        "datecreated",
        "time",
        "saledate",
        "ts",
        "orderts",
        "ordertime",
        "purchasetime",
        "transactiontime",
        "eventtime",
        "paidat",
        "datepaid",
    ),
    AMOUNT: (
        AMOUNT,
        "total",
        "totalamount",
        "revenue",
        "sales",
        "salesamount",
        "value",
        "dollarvalue",
        "spend",
        "netamount",
        "ordervalue",
        "linetotal",
        "totalprice",
        "amt",
        "ordertotal",
        "grandtotal",
        "subtotal",
    ),
    QUANTITY: (QUANTITY, "qty", "units", "numberofitems", "numberofcds", "count", "lineitemquantity"),
    UNIT_PRICE: ("unitprice", "price", "itemprice", "priceeach", "lineitemprice"),
    ORDER_ID: (
        "orderid",
        "invoice",
        "invoiceno",
        "invoiceid",
        "transactionid",
        "receiptid",
        "ordernumber",
        "basketid",
        "order",
        "orderno",
        "transaction",
        "txnid",
    ),
    PRODUCT_ID: ("productid", "stockcode", "sku", "itemid", "product", "article", "productcode"),
    CATEGORY: (CATEGORY, "productcategory", "department", "categoryname"),
    CHANNEL: (CHANNEL, "store", "country", "region", "shop"),
}

#: Normalized names of an order-number column that holds order numbers only when its values say so ('#1001', as
#: Shopify's 'Name'); see :data:`ORDER_NAME_PATTERN`.
ORDER_NAME_COLUMNS: tuple[str, ...] = ("name", "ordername")
#: An order number written with a leading '#' ('#1001', '#SH-1001').
ORDER_NAME_PATTERN = r"#\s?[A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*"

# Text timestamp formats tried when the values are not ISO 8601; day-first before month-first.
TIMESTAMP_FORMATS: tuple[str, ...] = tuple(
    f"{d}{t}"
    for d in ("%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%d-%m-%Y", "%Y/%m/%d", "%Y%m%d", "%d/%m/%y", "%m/%d/%y")
    for t in ("", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p")
)

#: Currency symbols (Unicode category Sc) a money text may carry before or after the number.
CURRENCY_SYMBOLS = "[$¢£¤¥֏؋৲৳৻૱௹฿៛\u20a0-\u20cf\ufdfc\ufe69\uff04\uffe0\uffe1\uffe5\uffe6]"
#: A currency symbol, or an ISO 4217 code before or after the number ('USD 12.00', '12,00 EUR').
CURRENCY_MARK = rf"{CURRENCY_SYMBOLS}|^[A-Z]{{3}}(?=\s*[-+.,0-9])|(?<=[.,0-9])\s*[A-Z]{{3}}$"
#: What is left of a money text without its currency mark: a number, possibly with thousands separators.
LOOSE_NUMBER = r"[+-]?[0-9.,]*[0-9][0-9.,]*"

#: Normalized names of a column that says each line's currency ('currency', 'Currency Code', 'order_currency', 'ccy').
CURRENCY_COLUMN_PATTERN = r"(?:[a-z]*currency|ccy|cur|curr)(?:code|iso|isocode)?"
#: Part of the normalized name of a column of refunded money ('Refunded Amount', 'refund_total', 'Total Refunded').
REFUND_COLUMN_PATTERN = r"refund"
