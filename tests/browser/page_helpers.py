"""Driving the spreadsheet page like a person: open it, click cells, type, read cells."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

WAIT_MS = 5000


async def open_page(
    browser: Any,
    base_url: str,
    key: str,
    table_id: str | None = None,
    *,
    name: str = "",
    viewport: dict[str, int] | None = None,
    permissions: list[str] | None = None,
) -> Any:
    """A fresh browser context on the page, signed in through the URL fragment (as the link
    ``hypertab serve --demo`` prints); waits until the table is live and drawn."""
    context = await browser.new_context(
        viewport=viewport or {"width": 1280, "height": 720}, permissions=permissions or []
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    if name:
        await context.add_init_script(f"localStorage.setItem('hypertab.name', {name!r})")
    path = f"/t/{table_id}" if table_id else "/"
    await page.goto(f"{base_url}{path}#key={key}")
    if table_id:
        await wait_live(page)
    return page


async def wait_live(page: Any) -> None:
    """Until the page's table is subscribed and its grid drawn."""
    await page.wait_for_function(
        "() => window.hypertab.table && window.hypertab.table.live && "
        "document.querySelector('#grid-rows .row')",
        timeout=WAIT_MS,
    )


def cell(page: Any, row: int, col: int) -> Any:
    """The locator of a cell by row index and column index (as drawn)."""
    return page.locator(f'#grid-rows .row[data-row="{row}"]:not([hidden]) .cell[data-col="{col}"]')


async def cell_text(page: Any, row: int, col: int) -> str:
    text: str = await cell(page, row, col).text_content(timeout=WAIT_MS)
    return text


async def wait_cell(page: Any, row: int, col: int, text: str) -> None:
    """Until the cell at (row, col) shows ``text``."""
    await page.wait_for_function(
        """([row, col, text]) => {
            const el = document.querySelector(
                `#grid-rows .row[data-row="${row}"]:not([hidden]) .cell[data-col="${col}"]`);
            return el !== null && el.textContent === text;
        }""",
        arg=[row, col, text],
        timeout=WAIT_MS,
    )


async def type_into(page: Any, row: int, col: int, text: str) -> None:
    """Click a cell, type ``text`` (type-to-edit) and press Enter."""
    await cell(page, row, col).click()
    await page.keyboard.type(text)
    await page.keyboard.press("Enter")


async def row_count(page: Any) -> int:
    count: int = await page.evaluate("() => window.hypertab.table.size")
    return count


async def status(page: Any) -> str:
    text: str = await page.locator("#status").text_content()
    return text


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Until ``check()`` holds (polling the event loop, for SDK-side state)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def wait_value(page: Any, row: int, col: int, text: str) -> None:
    """Until the page's replica holds ``text`` at (row, col), drawn or not (rows outside
    the view are virtualised away)."""
    await page.wait_for_function(
        """([row, col, text]) => {
            const t = window.hypertab.table;
            const r = t && t.rows()[row];
            const c = t && t.columns[col];
            return r && c && String(t.get(r.id, c.id) ?? "") === text;
        }""",
        arg=[row, col, text],
        timeout=WAIT_MS,
    )


async def scroll_to(page: Any, row: int) -> None:
    """Select a row's first cell, which scrolls it into view."""
    await page.evaluate("(row) => window.hypertab.grid.select(row, 0)", row)
