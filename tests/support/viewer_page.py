"""Queries of the viewer page's state, evaluated in Chromium by the browser tests."""

SHOWN = "+document.getElementById('shown').dataset.count"
VISIBLE_OUTCOMES = (
    "[...document.querySelectorAll('details.item')]"
    ".filter((c) => c.checkVisibility()).map((c) => c.dataset.outcome)"
)
BUTTON_COUNTS = (
    "Object.fromEntries([...document.querySelectorAll('#outcome-filter button')]"
    ".map((b) => [b.value, +b.dataset.count]))"
)
