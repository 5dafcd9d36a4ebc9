"""The page's security promises, in a real browser: cell text is text, injected scripts do not
run (CSP nonce), revoked keys are shown as such, read-only keys cannot edit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from page_helpers import (
    cell,
    cell_text,
    eventually,
    open_page,
    status,
    type_into,
    wait_cell,
)

from client_sdk import Client
from protocol.ops import UpdateCells

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOSTILE = "<img src=x onerror=alert(1)>"
WRITER = ["tables:read", "tables:write", "schema:write"]


async def test_cell_text_is_never_html(browser: Any, live_hub: Any, team: Any) -> None:
    _, key = team
    async with await Client.connect(live_hub.ws_url, api_key=key) as sdk:
        notes = await sdk.create_table("Notes", [("Text", "text")])
        await notes.insert({"Text": HOSTILE})
        await notes.insert({"Text": "<script>alert(2)</script>"})
        page = await open_page(browser, live_hub.page_url, key, notes.id)
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
        assert await cell_text(page, 0, 0) == HOSTILE
        assert await cell_text(page, 1, 0) == "<script>alert(2)</script>"
        # Typed in the page, the same text stays text in the other replicas.
        await type_into(page, 1, 0, '<b onmouseover="alert(3)">x</b>')
        await eventually(
            lambda: any(v.get("Text", "").startswith("<b ") for v in notes.rows.values())
        )
        await wait_cell(page, 1, 0, '<b onmouseover="alert(3)">x</b>')
        await cell(page, 1, 0).hover()
        await page.wait_for_timeout(300)
        assert await page.locator("#grid img, #grid script, #grid b").count() == 0
        assert dialogs == []
        assert page.errors == []
        await page.context.close()


async def test_an_injected_inline_script_is_blocked_by_the_csp(
    browser: Any, live_hub: Any, team: Any
) -> None:
    _, key = team
    async with await Client.connect(live_hub.ws_url, api_key=key) as sdk:
        table = await sdk.create_table("Csp", [("Text", "text")])
        row = await table.insert({"Text": "before"})
        context = await browser.new_context()
        await context.add_init_script(
            """document.addEventListener("securitypolicyviolation", (e) => {
                (window.__violations ||= []).push(e.violatedDirective);
            });"""
        )

        async def inject(route: Any) -> None:
            # What an HTML-injection bug would do: markup in the page, without the nonce.
            response = await route.fetch()
            html = await response.text()
            bad = "<script>window.__pwned = 1</script><style>body{display:none}</style>"
            await route.fulfill(response=response, body=html.replace("</body>", bad + "</body>"))

        await context.route(f"{live_hub.page_url}/t/**", inject)
        page = await context.new_page()
        loaded: list[str] = []
        page.on("request", lambda request: loaded.append(request.url))
        page.on("websocket", lambda ws: loaded.append(ws.url))
        await page.goto(f"{live_hub.page_url}/t/{table.id}#key={key}")
        await page.wait_for_function("() => window.hypertab && window.hypertab.table?.live")
        # Everything the page loads comes from the hub itself; no credential in any URL.
        hub = (f"{live_hub.page_url}/", f"{live_hub.ws_url}")
        assert loaded and all(url.startswith(hub) for url in loaded), loaded
        assert not any(key in url for url in loaded), "a credential in a requested URL"
        assert await page.evaluate("() => window.__pwned") is None
        violations = await page.evaluate("() => window.__violations || []")
        assert "script-src-elem" in violations and "style-src-elem" in violations
        assert await page.locator("body").is_visible()
        # The page keeps working: an edit goes through.
        await wait_cell(page, 0, 0, "before")
        await type_into(page, 0, 0, "after")
        await eventually(lambda: table.rows[row].get("Text") == "after")
        await context.close()


async def test_revoked_key_is_shown_and_a_fresh_key_resumes(
    browser: Any, live_hub: Any, team: Any
) -> None:
    record, admin = team
    issued = await live_hub.new_key(record.id, WRITER)
    async with await Client.connect(live_hub.ws_url, api_key=admin) as sdk:
        table = await sdk.create_table("Revoke", [("Name", "text")])
        first = await table.insert({"Name": "one"})
        page = await open_page(browser, live_hub.page_url, issued.secret, table.id)
        assert await status(page) == "live"
        control = live_hub.server.control
        await control.revoke_key(issued.record.id, now=time.time())
        await page.locator("#status", has_text="your access was revoked").wait_for(timeout=1000)
        assert await page.locator("#signin").is_visible()
        assert "revoked" in (await page.locator("#signin-reason").text_content())
        # Meanwhile the table moves on; a fresh key resumes where the page was.
        await table.insert({"Name": "two"})
        fresh = await live_hub.new_key(record.id, WRITER)
        await page.fill("#token-input", fresh.secret)
        await page.click("#signin-button")
        await page.locator("#status", has_text="live").wait_for(timeout=5000)
        await wait_cell(page, 1, 0, "two")
        assert await page.evaluate("() => window.hypertab.client.connections") == 2
        await type_into(page, 0, 0, "uno")
        await eventually(lambda: table.rows[first].get("Name") == "uno")
        stored = await page.evaluate("() => sessionStorage.getItem('hypertab.token')")
        assert stored == fresh.secret
        await page.context.close()


async def test_a_key_narrowed_while_open_turns_the_page_read_only(
    browser: Any, live_hub: Any, team: Any
) -> None:
    record, admin = team
    issued = await live_hub.new_key(record.id, WRITER)
    async with await Client.connect(live_hub.ws_url, api_key=admin) as sdk:
        table = await sdk.create_table("Narrowed", [("Name", "text")])
        await table.insert({"Name": "kept"})
        page = await open_page(browser, live_hub.page_url, issued.secret, table.id)
        assert await page.locator("#access").is_hidden()
        control = live_hub.server.control
        await control.update_key_scopes(issued.record.id, ["tables:read"], now=time.time())
        await page.locator("#access", has_text="read-only").wait_for(timeout=5000)
        await type_into(page, 0, 0, "changed")
        assert await page.locator(".editor").count() == 0
        assert await cell_text(page, 0, 0) == "kept"
        await page.context.close()


async def test_read_only_key_is_shown_as_read_only(browser: Any, live_hub: Any, team: Any) -> None:
    record, admin = team
    reader = await live_hub.new_key(record.id, ["tables:read"], name="viewer")
    async with await Client.connect(live_hub.ws_url, api_key=admin) as sdk:
        table = await sdk.create_table("Viewing", [("Name", "text")])
        row = await table.insert({"Name": "fixed"})
        page = await open_page(browser, live_hub.page_url, reader.secret, table.id)
        badge = page.locator("#access")
        await badge.wait_for()
        assert await badge.text_content() == "read-only"
        assert await page.locator("#row-add").is_disabled()
        await type_into(page, 0, 0, "changed")
        assert await page.locator(".editor").count() == 0
        await page.locator("#message", has_text="read-only").wait_for()
        await sdk.ping()
        assert table.rows[row] == {"Name": "fixed"}
        assert await cell_text(page, 0, 0) == "fixed"
        await page.context.close()


async def test_a_refused_key_and_the_rate_limit_are_shown(browser: Any, live_hub: Any) -> None:
    lifecycle = live_hub.server.services.lifecycle
    _, issued = await lifecycle.create_tenant("free", now=time.time())  # 100 ops/min
    page = await open_page(browser, live_hub.page_url, "ht_live_notakey_000")
    await page.locator("#signin-reason", has_text="refused").wait_for(timeout=5000)
    key = issued.secret
    async with await Client.connect(live_hub.ws_url, api_key=key) as sdk:
        table = await sdk.create_table("Free", [("Name", "text")])
        rows = [await table.insert({"Name": str(i)}) for i in range(3)]
        await page.fill("#token-input", key)
        await page.click("#signin-button")
        await page.goto(f"{live_hub.page_url}/t/{table.id}")  # the tab keeps its key
        await page.locator("#status", has_text="live").wait_for(timeout=5000)
        # The program spends the tenant's minute; the page's next edit waits for the window.
        spent = [UpdateCells(row=rows[i % 3], values={"Name": f"x{i}"}) for i in range(96)]
        await sdk.apply(table.id, spent)
        await type_into(page, 0, 0, "typed")
        await page.locator("#status", has_text="slow down: retrying in").wait_for(timeout=5000)
        assert await cell_text(page, 0, 0) == "typed"  # kept, pending, sent when allowed
        assert await page.evaluate("() => window.hypertab.client.unacknowledged.length") == 1
        await page.context.close()


async def test_an_expired_key_signs_the_page_out(browser: Any, live_hub: Any, team: Any) -> None:
    record, admin = team
    control = live_hub.server.control
    short = await control.create_key(
        record.id, "short", WRITER, created_by="tests", now=time.time(), expires_at=time.time() + 3
    )
    async with await Client.connect(live_hub.ws_url, api_key=admin) as sdk:
        table = await sdk.create_table("Expiring", [("Name", "text")])
        await table.insert({"Name": "still here"})
        page = await open_page(browser, live_hub.page_url, short.secret, table.id)
        await page.locator("#status", has_text="signed out: token expired").wait_for(timeout=8000)
        assert "expired" in (await page.locator("#signin-reason").text_content())
        assert await cell_text(page, 0, 0) == "still here"  # what was there stays visible
        await page.context.close()


async def test_the_printed_link_signs_in_and_leaves_no_key_in_the_address_bar(
    browser: Any, live_hub: Any, team: Any
) -> None:
    _, key = team
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{live_hub.page_url}/")
    await page.locator("#signin").wait_for()
    # The link followed in a tab that already shows the page: a same-document navigation.
    await page.goto(f"{live_hub.page_url}/#key={key}")
    await page.locator("#status", has_text="live").wait_for(timeout=5000)
    assert page.url == f"{live_hub.page_url}/"
    assert await page.evaluate("() => sessionStorage.getItem('hypertab.token')") == key
    assert await page.evaluate("() => localStorage.getItem('hypertab.token')") is None
    await context.close()
