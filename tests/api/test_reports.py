from __future__ import annotations

import datetime as dt

from leakmap.analytics import ReportFilters, run_report
from leakmap.crm import services
from tests.api.conftest import api_as, fields_of
from tests.factories import T0, LeadFactory, SourceFactory, days, make_deal, stage

AS_OF = "2026-03-01T00:00:00+08:00"


def _book(rep, teammate, outsider):
    """rep: 3 leads, 2 deals (one won); teammate: 1 lead, 1 deal; outsider: 2 leads, 1 deal."""
    web = SourceFactory(name="官网")
    for owner, n in ((rep, 3), (teammate, 1), (outsider, 2)):
        for _ in range(n):
            LeadFactory(owner=owner, source=web, created_at=T0)
    won = make_deal(owner=rep, amount=1000, source=web)
    services.deal_move(deal=won, stage=stage("proposal"), by=rep, at=T0 + days(2))
    services.deal_close_won(deal=won, by=rep, at=T0 + days(10))
    make_deal(owner=rep, amount=500, source=web)
    make_deal(owner=teammate, amount=700, source=web)
    make_deal(owner=outsider, amount=9000, source=web)


def _row(body, step):
    return next(r for r in body["rows"] if r["step"] == step)


def test_it_serves_the_cli_body_for_an_admin(rep, teammate, outsider, admin_user):
    _book(rep, teammate, outsider)
    response = api_as(admin_user).get("/reports/funnel", as_of=AS_OF)
    assert response.status_code == 200
    body = response.json()
    cli = run_report(
        "funnel", ReportFilters(as_of=dt.datetime.fromisoformat(AS_OF), viewer=None)
    ).to_json()
    assert body == cli
    assert (_row(body, "leads")["count"], _row(body, "deals")["count"]) == (6, 4)
    assert body["period"] == {"from": None, "to": None}


def test_every_report_serves_the_whole_cli_body_with_its_own_keys(
    rep, teammate, outsider, admin_user
):
    """The keys some reports add to CONTRACT §5's (weekly's week and by_owner, lost-reasons'
    by_competitor, …) reach the API's body too."""
    _book(rep, teammate, outsider)
    client = api_as(admin_user)
    as_of = dt.datetime.fromisoformat(AS_OF)
    for name in ("weekly", "lost-reasons", "owners", "stuck", "diagnosis"):
        body = client.get(f"/reports/{name}", as_of=AS_OF).json()
        cli = run_report(name, ReportFilters(as_of=as_of, viewer=None)).to_json()
        assert body == cli, name
    assert {"week", "weeks", "by_owner"} <= set(body_of(client, "weekly"))


def body_of(client, name: str) -> dict:
    return client.get(f"/reports/{name}", as_of=AS_OF).json()


def test_it_limits_reports_to_what_the_caller_may_see(rep, teammate, outsider, manager):
    _book(rep, teammate, outsider)
    mine = api_as(rep).get("/reports/funnel", as_of=AS_OF).json()
    assert (_row(mine, "leads")["count"], _row(mine, "deals")["count"]) == (3, 2)
    assert (_row(mine, "deals")["amount"], _row(mine, "won")["count"]) == (1500.0, 1)
    team = api_as(manager).get("/reports/funnel", as_of=AS_OF).json()
    assert (_row(team, "leads")["count"], _row(team, "deals")["count"]) == (4, 3)
    owners = api_as(rep).get("/reports/owners", as_of=AS_OF).json()
    assert [(r["owner"], r["deals"], r["won"]) for r in owners["rows"]] == [("alice", 2, 1)]
    team_owners = api_as(manager).get("/reports/owners", as_of=AS_OF).json()
    assert [r["owner"] for r in team_owners["rows"]] == ["alice", "bob"]


def test_it_refuses_another_reps_name_as_if_it_did_not_exist(rep, teammate, outsider):
    _book(rep, teammate, outsider)
    client = api_as(rep)
    hidden = client.get("/reports/funnel", owner=outsider.username)
    missing = client.get("/reports/funnel", owner="nobody")
    assert hidden.status_code == missing.status_code == 422
    assert fields_of(hidden) == fields_of(missing) == {"owner"}
    assert hidden.json()["detail"][0]["message"].replace(outsider.username, "X") == missing.json()[
        "detail"
    ][0]["message"].replace("nobody", "X")
    other_team = client.get("/reports/funnel", team="华南组")
    assert fields_of(other_team) == {"team"}


def test_it_names_the_bad_report_parameter(rep):
    client = api_as(rep)
    assert fields_of(client.get("/reports/nonsense")) == {"name"}
    assert fields_of(client.get("/reports/funnel", **{"from": "2026-13-01"})) == {"from"}
    assert fields_of(
        client.get("/reports/funnel", **{"from": "2026-02-01", "to": "2026-01-01"})
    ) == {"from"}
    assert fields_of(client.get("/reports/funnel", as_of="yesterday")) == {"as_of"}
    assert fields_of(client.get("/reports/funnel", source="没有这个渠道")) == {"source"}


def test_it_filters_by_period_and_source(rep, teammate, outsider, admin_user):
    _book(rep, teammate, outsider)
    LeadFactory(owner=rep, source=SourceFactory(name="展会"), created_at=T0 + days(40))
    client = api_as(admin_user)
    body = client.get("/reports/funnel", source="展会", as_of=AS_OF).json()
    assert _row(body, "leads")["count"] == 1
    january = client.get(
        "/reports/funnel", **{"from": "2026-01-01", "to": "2026-01-31", "as_of": AS_OF}
    ).json()
    assert _row(january, "leads")["count"] == 6
    assert january["period"] == {"from": "2026-01-01", "to": "2026-01-31"}


def test_it_reviews_the_week_asked_for_and_names_a_bad_one(rep):
    client = api_as(rep)
    chosen = client.get("/reports/weekly", week="2026-W05", as_of=AS_OF)
    assert chosen.status_code == 200 and chosen.json()["week"] == "2026-W05"
    default = client.get("/reports/weekly", as_of=AS_OF).json()
    assert default["week"] == "2026-W08"  # the last complete week before 2026-03-01 (a Sunday)
    assert fields_of(client.get("/reports/weekly", week="2026-05")) == {"week"}
    assert fields_of(client.get("/reports/weekly", week="2026-W60")) == {"week"}
    assert fields_of(client.get("/reports/funnel", week="2026-W05")) == {"week"}
