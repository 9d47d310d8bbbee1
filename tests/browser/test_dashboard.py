"""The operator dashboard as an operator uses it, in headless Chromium: sign in, watch the
split follow the API, approve one rollout and abort another, and read hostile names as text.

Every wait is bounded (``expect`` with a timeout); nothing asserts how fast a thing happened.
"""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.browser.conftest import TOKEN, Stack, Watched, screenshot, sign_in

WAIT_MS = 15_000
XSS = "<img src=x onerror=alert(1)>"


def plan(route: str, version: str, url: str, second_phase: str) -> str:
    return f"""canary_deployment:
  route: {route}
  baseline: stable
  candidate: {{track: canary, version: {version}, upstreams: ["{url}"]}}
  phases:
    - {{name: "Phase 1", traffic: 50, duration: 1s}}
    - {{name: "Phase 2", traffic: 100, {second_phase}}}
  canary_metrics: {{primary: [], secondary: []}}
"""


async def open_tab(page: Page, name: str) -> None:
    await page.get_by_role("tab", name=name).click()
    await expect(page.get_by_role("tabpanel", name=name)).to_be_visible()


async def test_sign_in_then_the_split_follows_the_api(page: Watched, stack: Stack) -> None:
    p = page.page
    await p.goto(stack.ui)
    # Without the token the API answers 401, and the page asks for it.
    assert await p.evaluate("fetch('/v1/routes').then(r => r.status)") == 401
    await expect(p.get_by_role("button", name="Sign in")).to_be_visible()
    await p.get_by_label("Admin token").fill("not-the-token")
    await p.get_by_role("button", name="Sign in").click()
    await expect(p.locator("#sign-in-error")).to_have_text("That token was refused.")
    page.problems.clear()  # the refused call's 401 is logged by the browser, as it should be

    await sign_in(p, stack.ui)
    assert p.url == stack.ui  # the token never goes in the URL ...
    assert await p.context.cookies() == []  # ... nor in a cookie
    assert await p.evaluate("sessionStorage.getItem('splitgate.token')") == TOKEN
    chat = p.locator("[data-route=chat]")
    await expect(chat.locator("tr[data-track=stable] .weight")).to_have_text("100%")
    await expect(p.locator("#generation")).to_contain_text("applied by all 1")

    await stack.traffic(120)
    await stack.admin(
        "PUT",
        "/v1/routes/chat/weights",
        {"weights": {"stable": 70, "canary": 30}, "reason": "more canary"},
        **{"X-Splitgate-Actor": "bob"},
    )
    await expect(chat.locator("tr[data-track=canary] .weight")).to_have_text("30%", timeout=WAIT_MS)
    await expect(chat.locator("tr[data-track=stable] .weight")).to_have_text("70%")
    await expect(chat.locator(".split-item[data-track=canary]")).to_have_text("canary 30%")
    await stack.traffic(120)
    await expect(chat.locator("tr[data-track=canary]")).to_contain_text("healthy", timeout=WAIT_MS)
    # The proxy's counts reach the fleet windows (flushed every second), then the page.
    served = chat.locator("tr[data-track=canary] .served")
    await expect(served).not_to_have_text(re.compile(r"^(–|0\.0 %)$"), timeout=WAIT_MS)
    await screenshot(p, "routes")

    await open_tab(p, "Charts")
    charts = p.locator("#panel-charts")
    await expect(charts.locator("figcaption", has_text="Requests per second")).to_be_visible()
    await expect(charts.locator("figure").first.locator("polyline").first).to_be_visible(
        timeout=WAIT_MS
    )
    await charts.get_by_role("button", name="1 hour").click()
    await expect(charts.get_by_text("one point per 30 s")).to_be_visible(timeout=WAIT_MS)
    await charts.get_by_role("button", name="5 min").click()
    await expect(charts.get_by_text("one point per 10 s")).to_be_visible(timeout=WAIT_MS)
    await screenshot(p, "charts")

    await open_tab(p, "Audit")
    row = p.locator("#panel-audit tbody tr").first
    await expect(row).to_contain_text("more canary")
    await expect(row.locator(".actor")).to_have_text("bob")
    await expect(row).to_contain_text("canary 0% → 30%")
    await screenshot(p, "audit")

    await p.get_by_role("button", name="Sign out").click()
    await expect(p.get_by_role("button", name="Sign in")).to_be_visible()
    assert await p.evaluate("sessionStorage.getItem('splitgate.token')") is None


async def confirm(page: Page, actor: str, reason: str) -> None:
    dialog = page.locator("dialog#confirm")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Your name").fill(actor)
    await dialog.get_by_label("Reason").fill(reason)
    await dialog.get_by_role("button", name="Confirm").click()
    await expect(dialog).to_be_hidden()


async def test_approve_one_rollout_and_abort_another(page: Watched, stack: Stack) -> None:
    p = page.page
    await sign_in(p, stack.ui)
    await open_tab(p, "Rollouts")
    await expect(p.locator("#active-rollouts")).to_have_text("No active rollout.")

    waits = plan("chat", "v1.1.0", stack.canary_url, "requires_approval: true")
    good = (await stack.admin("POST", "/v1/rollouts", waits))["id"]
    card = p.locator(f"#active-rollouts [data-rollout='{good}']")
    await expect(card).to_have_attribute("data-status", "awaiting_approval", timeout=WAIT_MS)
    await expect(card.locator(".waiting")).to_contain_text("approv")
    await expect(card.locator(".phase.done")).to_have_text("Phase 1 50%")
    await expect(card.get_by_role("button", name="Promote")).to_be_disabled()
    await screenshot(p, "rollout-waiting")

    # Cancelling the confirmation does nothing.
    await card.get_by_role("button", name="Approve").click()
    await p.locator("dialog#confirm").get_by_role("button", name="Cancel").click()
    await expect(card).to_have_attribute("data-status", "awaiting_approval")

    await card.get_by_role("button", name="Approve").click()
    await confirm(p, "alice", "error rate flat, p95 fine")
    past = p.locator(f"#past-rollouts [data-rollout='{good}']")
    await expect(past).to_contain_text("promoted", timeout=WAIT_MS)
    await past.locator("summary").click()
    await expect(past.locator(".history")).to_contain_text("by alice: error rate flat, p95 fine")

    slow = plan("embed", "v1.2.0", stack.canary_url, "requires_approval: true")
    bad = (await stack.admin("POST", "/v1/rollouts", slow))["id"]
    card = p.locator(f"#active-rollouts [data-rollout='{bad}']")
    await expect(card).to_be_visible(timeout=WAIT_MS)
    await card.get_by_role("button", name="Abort").click()
    await confirm(p, "carol", "wrong build")
    aborted = p.locator(f"#past-rollouts [data-rollout='{bad}']")
    await expect(aborted).to_contain_text("aborted", timeout=WAIT_MS)
    await expect(p.locator("#active-rollouts")).to_have_text("No active rollout.")
    await aborted.locator("summary").click()
    await expect(aborted.locator(".history")).to_contain_text("by carol: wrong build")
    await screenshot(p, "rollouts")

    route = await stack.admin("GET", "/v1/routes/chat")
    weights = {t["name"]: (t["weight"], t["version"]) for t in route["route"]["tracks"]}
    assert weights == {"stable": (100, "v1.1.0"), "canary": (0, "v1.1.0")}


async def test_names_from_the_document_render_as_text(page: Watched, stack: Stack) -> None:
    """Track names allow no markup (``config.base.Name``), but versions, reasons and actors
    are free text: each shows as the characters it is made of, and no script runs."""
    p = page.page
    await stack.admin(
        "PUT",
        "/v1/routes/chat/tracks/evil",
        {"version": XSS, "upstreams": [stack.canary_url], "weight": 0, "reason": XSS},
        **{"X-Splitgate-Actor": "<b>mallory</b>"},
    )
    await sign_in(p, stack.ui)
    row = p.locator("[data-route=chat] tr[data-track=evil]")
    await expect(row.locator(".version")).to_have_text(XSS, timeout=WAIT_MS)
    assert await p.locator("#app img, #app b").count() == 0
    await open_tab(p, "Audit")
    audit = p.locator("#panel-audit tbody tr").first
    await expect(audit.locator(".reason")).to_have_text(XSS)
    await expect(audit.locator(".actor")).to_have_text("<b>mallory</b>")
    assert await p.locator("#app img, #app b").count() == 0
    await screenshot(p, "xss")


async def test_a_flag_shows_its_audience_and_the_form_explains_a_request(
    page: Watched, stack: Stack
) -> None:
    flag = {
        "route": "chat",
        "track": "canary",
        "conditions": [{"attribute": "region", "operator": "in", "values": ["jp"]}],
        "override": {"enabled_for": ["alice"]},
        "rollout_percentage": 100,
        "description": "v1.1.0 for Japan first",
    }
    await stack.admin("PUT", "/v1/flags/japan-first", flag)
    p = page.page
    await sign_in(p, stack.ui)
    await open_tab(p, "Flags")
    card = p.locator("[data-flag=japan-first]")
    await expect(card).to_contain_text("region in jp", timeout=WAIT_MS)
    await expect(card).to_contain_text("on for 1 listed users")
    form = p.locator("#explain-form")
    await form.get_by_label("User id").fill("alice")
    await form.get_by_role("button", name="Explain").click()
    await expect(form.locator(".explained-track")).to_have_text("canary", timeout=WAIT_MS)
    await expect(form).to_contain_text("released by flag japan-first")
    await form.get_by_label("User id").fill("bob")
    await form.get_by_label("Attributes").fill("region=fr")
    await form.get_by_role("button", name="Explain").click()
    await expect(form.locator(".explained-track")).to_have_text("stable", timeout=WAIT_MS)
    await screenshot(p, "flags")
