"""Metadata the assets report to the UI: column schemas and previews with personal data masked.

Previews live in Dagster's event log, outside the warehouse, where a privacy deletion cannot reach them; so they
show ids, forms, times and statuses, and only masked contact data (``a***@example.com``, ``+90******4567``).
"""


import dagster as dg

from leads_pipeline.lib.warehouse import Warehouse

# Who answers for the pipeline's assets (shown on every asset in the UI; the LeadPipeline component's `owners`
# overrides it). Dagster accepts team names (`team:…`) and email addresses.
OWNERS = ["team:lead-ops"]

# Column descriptions shown in the UI; docs/schema.md is the full reference.
COLUMN_DOCS = {
    "meta_lead_id": "Meta's lead id (the webhook's leadgen_id); primary key",
    "distributor": "distributors.key: the partition this lead belongs to",
    "created_time": "when the person submitted the form (UTC)",
    "email": "normalised email (trimmed, lower-case), NULL when it does not validate (see email_raw)",
    "phone": "phone in E.164, NULL when it does not validate (see phone_raw)",
    "email_raw": "the email answer as typed, kept when it does not validate",
    "phone_raw": "the phone answer as typed, kept when it does not validate",
    "status": "new → assigned → contacted → converted | rejected",
    "status_reason": "why the lead was stored as rejected, e.g. 'no valid contact' (staff can reopen it)",
    "custom_fields": "every other answer as JSON {question: [values]}",
    "sync_id": "sync_runs.sync_id of the run that stored the row",
}


def table_schema(wh: Warehouse, table: str) -> dg.TableSchema:
    """The table's columns as the warehouse reports them."""
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        )
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                r["column_name"],
                str(r["data_type"]).lower(),
                description=COLUMN_DOCS.get(r["column_name"]),
                constraints=dg.TableColumnConstraints(nullable=r["is_nullable"] == "YES"),
            )
            for r in rows
        ]
    )


def mask_email(email: str | None) -> str:
    if not email or "@" not in email:
        return ""
    local, domain = email.split("@", 1)
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    return phone[:3] + "*" * max(len(phone) - 7, 0) + phone[-4:]


def leads_preview(wh: Warehouse, distributor: str, limit: int = 5) -> str:
    """A markdown table of the distributor's newest leads, contact data masked."""
    with wh.transaction(read_only=True) as conn:
        rows = conn.query(
            "SELECT meta_lead_id, form_id, created_time, platform, is_organic, email, phone, status FROM leads "
            "WHERE distributor = ? ORDER BY created_time DESC LIMIT ?",
            [distributor, limit],
        )
    if not rows:
        return "_no leads yet_"
    lines = ["| lead | form | created (UTC) | platform | organic | email | phone | status |", "|---" * 8 + "|"]
    for r in rows:
        lines.append(
            f"| {r['meta_lead_id']} | {r['form_id']} | {r['created_time']:%Y-%m-%d %H:%M} | {r['platform'] or ''} "
            f"| {r['is_organic']} | {mask_email(r['email'])} | {mask_phone(r['phone'])} | {r['status']} |"
        )
    return "\n".join(lines)
