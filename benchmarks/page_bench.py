"""Server time of the main web pages on a generated company, per role.

    python benchmarks/page_bench.py --database-url sqlite:////path/bench.sqlite3 [--repeat 5]
        [--only search]

Use a database filled by `leakmap generate` + `leakmap import` (report_bench.py leaves one in its
workdir). Logs in as one rep, one manager and one admin of that data through Django's test
client (no network, so the figure is server time: middleware, views, queries, templates) and
prints, per page and role, the median of --repeat requests after one warm-up, and the number of
queries of the last request. Target (issue 5): under 200 ms per page at 1,000,000 leads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PAGES = [
    ("Today", "/"),
    ("Lead list", "/leads/"),
    ("Lead list, page 200", "/leads/?page=200"),
    # Sorted by a column (the list's headers): by a text, a money and a joined column.
    ("Lead list, sorted by name", "/leads/?sort=name"),
    ("Lead list, sorted by name, page 200", "/leads/?sort=name&page=200"),
    ("Lead list, sorted by budget, descending", "/leads/?sort=-budget"),
    ("Lead list, sorted by owner", "/leads/?sort=owner"),
    ("Lead list, sorted by status", "/leads/?sort=status"),
    ("Lead list, sorted by name, filtered by status", "/leads/?sort=name&status=qualified"),
    ("Lead search", "/leads/?q=%E6%9D%8E"),  # 李: one character, a common surname
    # A phone number and an e-mail address (the customer on the line), and text no lead has
    # (without the text index, a substring search read every lead to be sure).
    ("Lead search, phone", "/leads/?q=13800138000"),
    ("Lead search, e-mail", "/leads/?q=Someone%40Example.com"),
    ("Lead search, no match", "/leads/?q=zzq"),
    # Two characters: no trigram, so a scan (crm.text_search).
    ("Lead search, 2 characters, no match", "/leads/?q=zq"),
    ("Lead search, 2 Chinese characters, no match", "/leads/?q=%E9%BE%99%E8%99%BE"),  # 龙虾
    ("Lead search, 1 character, no match", "/leads/?q=z"),
    # A full name (12 leads of the generated million): found in the text index.
    ("Lead search, a name", "/leads/?q=%E9%AD%8F%E6%B6%9B%E5%88%9A"),
    # 苏州智联物流, a company's name (652 leads): more than the index is asked for.
    ("Lead search, a company", "/leads/?q=%E8%8B%8F%E5%B7%9E%E6%99%BA%E8%81%94%E7%89%A9%E6%B5%81"),
    # The header's search over every kind: part of a phone, part of every generated e-mail
    # address, a number, one common character, a whole name, and text nothing has.
    ("Global search, part of a phone", "/search/?q=138001"),
    ("Global search, part of an e-mail", "/search/?q=example.com"),
    ("Global search, 4 digits", "/search/?q=8000"),
    ("Global search, 1 character", "/search/?q=%E6%9D%8E"),
    ("Global search, a name", "/search/?q=%E9%AD%8F%E6%B6%9B%E5%88%9A"),
    ("Global search, no match", "/search/?q=zzq"),
    ("Global search, digits no phone has", "/search/?q=0000000"),
    ("Lead search, part of a phone", "/leads/?q=138001"),
    ("Deal kanban", "/deals/"),
    ("Deal list", "/deals/list/"),
    ("Deal list, sorted by amount, descending", "/deals/list/?sort=-amount"),
    ("Deal list, sorted by stage", "/deals/list/?sort=stage"),
    ("Deal list, sorted by next follow-up", "/deals/list/?sort=next_follow_up"),
    ("Deal search, no match", "/deals/list/?q=zzq"),
    ("Deal search, 2 characters, no match", "/deals/list/?q=zq"),
    (
        "Deal search, a company",
        "/deals/list/?q=%E8%8B%8F%E5%B7%9E%E6%99%BA%E8%81%94%E7%89%A9%E6%B5%81",
    ),
    ("Account list", "/accounts/"),
    ("Account list, sorted by owner", "/accounts/?sort=owner"),
    ("Contact list", "/contacts/"),
    ("Contact list, sorted by account", "/contacts/?sort=account"),
    ("Contact list, page 100", "/contacts/?page=100"),
    ("Contact search", "/contacts/?q=%E6%9D%8E"),
    ("Contact search, no match", "/contacts/?q=zzq"),
    ("Tasks", "/tasks/"),
    # A manager's whole team (a rep has no such choice: the page answers 400).
    ("Tasks, team", "/tasks/?who=team"),
    ("Week calendar", "/tasks/calendar/"),
    ("Week calendar, team", "/tasks/calendar/?who=team"),
    ("Notifications", "/notifications/"),
    ("Diagnosis", "/reports/diagnosis/"),
    ("Weekly review", "/reports/weekly/"),
    ("Report: {name}", "report:{name}"),  # one row per report page of the web app (below)
    # Detail pages: the newest record of each kind the user may see (filled in per user below).
    ("Lead detail", "lead:{lead}"),
    ("Deal detail", "deal:{deal}"),
    ("Account detail", "account:{account}"),
    ("Contact detail", "contact:{contact}"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--only", default="", help="time only the pages whose name contains this (any case)"
    )
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leakmap.config.settings")
    os.environ.setdefault("LEAKMAP_ALLOWED_HOSTS", "testserver")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from leakmap.accounts.models import Role, User
    from leakmap.crm import selectors
    from leakmap.web.views.reports import REPORT_PAGES

    pages = []
    for name, url in PAGES:
        if url.startswith("report:"):
            pages += [(f"Report: {key}", f"/reports/{key}/") for key in REPORT_PAGES]
        else:
            pages.append((name, url))
    pages = [(name, url) for name, url in pages if args.only.lower() in name.lower()]

    people = {
        "rep": User.objects.filter(role=Role.REP, deals__isnull=False).order_by("pk").first(),
        "manager": User.objects.filter(role=Role.MANAGER).order_by("pk").first(),
        "admin": User.objects.filter(role=Role.ADMIN).order_by("pk").first()
        or User.objects.create(username="bench-admin", role=Role.ADMIN, is_superuser=True),
    }
    print(f"| page | {' | '.join(people)} |")
    print(f"|---|{'---:|' * len(people)}")
    results: dict[str, list[str]] = {name: [] for name, _ in pages}
    for _role, user in people.items():
        client = Client()
        if user is None:
            for name, _ in pages:
                results[name].append("–")
            continue
        client.force_login(user)
        newest = {
            "lead": selectors.visible_leads(user),
            "deal": selectors.visible_deals(user),
            "account": selectors.visible_accounts(user),
            "contact": selectors.visible_contacts(user),
        }
        for name, url in pages:
            kind = url.split(":")[0]
            if kind in newest:
                pk = newest[kind].order_by("-pk").values_list("pk", flat=True).first()
                url = f"/{kind}s/{pk}/"
            client.get(url)  # warm-up: caches, first-time imports
            times = []
            for _ in range(args.repeat):
                with CaptureQueriesContext(connection) as queries:
                    start = time.perf_counter()
                    response = client.get(url)
                    times.append((time.perf_counter() - start) * 1000)
            status = "" if response.status_code == 200 else f" ({response.status_code})"
            results[name].append(f"{statistics.median(times):.0f} ms, {len(queries)} q{status}")
    for name, _ in pages:
        print(f"| {name} | {' | '.join(results[name])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
