"""Drives Strata's web UI in headless Chromium (Playwright) and reports what it showed.

Usage: ui_waterfall.py BASE_URL CHROMIUM TRACE_ID SERVICE

Searches for SERVICE's traces, opens TRACE_ID from the result list, reads the waterfall
(every row's span id, parent id, depth, service and name), opens the failing span's details,
reads the trace's log records, then the services page and the SQL console. Prints one JSON
object; any JavaScript error or refused resource in the page is listed under "errors".
"""

import json
import sys

from playwright.sync_api import sync_playwright

TIMEOUT_MS = 30_000


def main():
    base, chromium, trace_id, service = sys.argv[1:5]
    out = {"errors": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda e: out["errors"].append(f"page error: {e}"))
        page.on("console", lambda m: out["errors"].append(f"console: {m.text}") if m.type == "error" else None)
        page.on("requestfailed", lambda r: out["errors"].append(f"request failed: {r.url}"))

        page.goto(f"{base}/")
        page.wait_for_selector(f"#service option[value='{service}']", state="attached")
        page.select_option("#service", service)
        page.click("#search-button")
        link = f"a.trace-link[data-trace-id='{trace_id}']"
        page.wait_for_selector(link)
        out["results"] = page.locator("a.trace-link").count()
        page.click(link)
        page.wait_for_selector("#waterfall .span-row[data-span-id]")
        out["rows"] = page.eval_on_selector_all(
            "#waterfall .span-row[data-span-id]",
            """rows => rows.map(r => ({
                id: r.dataset.spanId, parent: r.dataset.parentId, depth: Number(r.dataset.depth),
                service: r.dataset.service, name: r.dataset.name,
                indent: parseFloat(getComputedStyle(r.querySelector('.span-label')).paddingLeft),
                bar: r.querySelector('.span-bar').getBoundingClientRect().width,
                error: r.classList.contains('error'),
            }))""",
        )
        out["title"] = page.inner_text("h1")
        page.click("#waterfall .span-row.error >> nth=-1")
        page.wait_for_selector("#details h2")
        out["details"] = page.inner_text("#details")
        page.wait_for_selector("#logs table.logs, #logs p.muted:not(:has-text('Loading'))")
        out["logs"] = page.inner_text("#logs")

        page.goto(f"{base}/#/services")
        page.wait_for_selector("#services-table")
        out["services"] = page.eval_on_selector_all("#services-table tr[data-service]", "rs => rs.map(r => r.dataset.service)")

        page.goto(f"{base}/#/sql")
        page.click("#run-sql")
        page.wait_for_selector("#sql-result table")
        out["sql_rows"] = page.locator("#sql-result tbody tr").count()
        browser.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
