"""The Content-Security-Policy in a real Chromium: the main pages, htmx and the ECharts charts
work under it without a single violation, an injected inline script does not run, and only
the web-to-lead form may be framed by another site."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from leakmap.api.models import WebForm
from leakmap.crm.models import Lead
from tests.factories import UserFactory
from tests.web.browser import build_company, install_default_pipeline, shot, sign_in

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Runs before any script of the page (Playwright's init scripts are not subject to the page's
# policy): every violation the browser reports lands in window.__csp.
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
                    " at " + (e.sourceFile || document.location.pathname) + ":" + e.lineNumber);
});
"""


@pytest.fixture
def people(transactional_db):
    from tests.factories import TeamFactory

    install_default_pipeline()
    team = TeamFactory(name="华东一组")
    manager = UserFactory(username="manager", role="manager", team=team, display_name="王经理")
    rep = UserFactory(username="alice", role="rep", team=team, manager=manager, display_name="李娜")
    teammate = UserFactory(
        username="bob", role="rep", team=team, manager=manager, display_name="赵强"
    )
    return {"manager": manager, "rep": rep, "teammate": teammate}


class Watched:
    """A page whose policy violations (events and console reports) are collected."""

    def __init__(self, page):
        self.page = page
        self.violations: list[str] = []
        page.add_init_script(LISTEN)
        page.on(
            "console",
            lambda m: (
                self.violations.append(f"console: {m.text}")
                if "Content Security Policy" in m.text or "Content-Security-Policy" in m.text
                else None
            ),
        )

    def collect(self) -> None:
        where = self.page.url
        for v in self.page.evaluate("window.__csp || []"):
            self.violations.append(f"{where}: {v}")

    def visit(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        self.collect()


def assert_chart_drawn(page, selector: str = "#chart") -> None:
    page.locator(f"{selector}[data-ready] svg").first.wait_for()
    drawn = page.evaluate(
        """(sel) => {
            const svg = document.querySelector(sel + " svg");
            const box = svg.getBoundingClientRect();
            return {w: box.width, h: box.height,
                    shapes: svg.querySelectorAll("path, rect, text").length};
        }""",
        selector,
    )
    assert drawn["w"] > 100 and drawn["h"] > 100, drawn
    assert drawn["shapes"] > 10, drawn


def test_it_runs_the_main_pages_under_the_policy_without_a_violation(live_server, browser, people):
    build_company(people, deals=40)
    lead = Lead.objects.filter(owner=people["manager"]).first()
    base = live_server.url
    page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 900})
    watched = Watched(page)

    watched.visit(f"{base}/login/")
    sign_in(page, base, "manager")
    watched.collect()
    for path in ("/", "/leads/", "/deals/", "/deals/list/", "/accounts/"):
        watched.visit(f"{base}{path}")

    # ECharts draws under the policy, tooltips (inline-styled HTML) included.
    watched.visit(f"{base}/reports/funnel/")
    assert_chart_drawn(page)
    box = page.locator("#chart").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(300)
    shot(page, "csp-report-funnel")
    watched.collect()
    watched.visit(f"{base}/reports/lost-reasons/")
    assert_chart_drawn(page)
    watched.visit(f"{base}/reports/diagnosis/")
    if page.locator(".finding-chart").count():
        assert_chart_drawn(page, ".finding-chart")

    # The print button works without its old inline handler.
    watched.visit(f"{base}/reports/weekly/")
    assert_chart_drawn(page)
    page.evaluate("window.print = function () { window.__printed = true; }")
    page.click("[data-print]")
    assert page.evaluate("window.__printed === true")
    watched.collect()

    # htmx under the policy: an activity logged on a lead lands in its timeline in place.
    watched.visit(f"{base}/leads/{lead.pk}/")
    page.fill("#lead-activity input[name=subject]", "CSP 下的电话")
    page.click("#lead-activity button[type=submit]")
    page.locator("#lead-activity .timeline-item", has_text="CSP 下的电话").wait_for()
    assert page.url == f"{base}/leads/{lead.pk}/"
    watched.collect()

    # The vendored API docs render too.
    watched.visit(f"{base}/api/v1/docs")
    page.locator(".swagger-ui .opblock").first.wait_for()
    watched.collect()

    assert watched.violations == []

    # And the policy is really enforced: an injected inline script and handler do not run, and
    # the browser reports each.
    watched.visit(f"{base}/leads/")
    page.evaluate(
        """() => {
            const s = document.createElement("script");
            s.textContent = "window.__injected = true";
            document.head.appendChild(s);
            const b = document.createElement("button");
            b.id = "evil";
            b.textContent = "x";
            b.setAttribute("onclick", "window.__clicked = true");
            document.body.appendChild(b);
        }"""
    )
    page.click("#evil")
    page.wait_for_timeout(200)
    assert page.evaluate("window.__injected === undefined && window.__clicked === undefined")
    watched.collect()
    reported = [v.split(": ", 1)[1].split()[0] for v in watched.violations if "console" not in v]
    assert sorted(reported) == ["script-src-attr", "script-src-elem"], watched.violations
    page.close()


class _Embedder(BaseHTTPRequestHandler):
    """Another site (another origin) that frames the web form and, trying, the app."""

    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_it_lets_another_site_frame_the_web_form_and_nothing_else(live_server, browser, people):
    WebForm.objects.create(
        name="官网试用申请",
        slug="trial",
        fields=["company", "email"],
        owner=people["rep"],
        min_fill_seconds=0,
        thank_you_text="谢谢，我们会尽快联系您。",
    )
    base = live_server.url
    _Embedder.body = (
        "<!DOCTYPE html><html><body><h1>合作伙伴网站</h1>"
        f'<iframe id="form" src="{base}/api/forms/trial/" width="600" height="500"></iframe>'
        f'<iframe id="app" src="{base}/login/" width="600" height="300"></iframe>'
        "</body></html>"
    ).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embedder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page(locale="zh-CN", viewport={"width": 1300, "height": 900})
        watched = Watched(page)
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        page.wait_for_load_state("networkidle")

        form = page.frame_locator("#form")
        form.locator("input[name=name]").fill("张三")
        form.locator("input[name=email]").fill("zhang@example.com")
        form.locator("button[type=submit]").click()
        form.locator("text=谢谢，我们会尽快联系您。").wait_for()
        shot(page, "csp-embedded-web-form")

        lead = Lead.objects.get()
        assert (lead.name, lead.email, lead.owner) == ("张三", "zhang@example.com", people["rep"])
        # The app's own pages refuse to be framed: the frame never gets the login form.
        app_frame = page.locator("#app").element_handle().content_frame()
        assert app_frame.locator("input[name=username]").count() == 0
        assert page.locator("#form").element_handle().content_frame().url.startswith(base)
        assert [v for v in watched.violations if "frame-ancestors 'none'" in v]
        # Nothing else was refused: the form page itself runs under its policy untouched.
        assert not [v for v in watched.violations if "frame-ancestors" not in v]
        page.close()
    finally:
        server.shutdown()
        server.server_close()
