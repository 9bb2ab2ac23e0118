"""Every date, datetime and month input round-trips in every language.

An HTML date input shows and sends only ISO values (`2027-03-20`, `2027-03-18T10:30`,
`2027-03`); a value in the page language's format (zh-hans `2027/03/20`) leaves it blank, and
saving the form then erases the date. These render each form with such inputs as a user whose
language is zh-hans or en, read the value attributes, and post the rendered values back."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django import forms
from django.urls import reverse

from leakmap.crm.models import Deal, Spend
from leakmap.web import forms as web_forms
from leakmap.web.views.reports import ReportFilterForm
from tests.factories import LeadFactory, SourceFactory, make_deal

pytestmark = pytest.mark.django_db
LANGUAGES = ["zh-hans", "en"]
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
CLOSE = dt.date(2027, 3, 20)
FOLLOW_UP = dt.datetime(2027, 3, 18, 10, 30, tzinfo=SHANGHAI)
ISO = {
    "date": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "datetime-local": re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{3})?)?$"),
    "month": re.compile(r"^\d{4}-\d{2}$"),
}


class FormFields(HTMLParser):
    """The named fields of each <form> on a page: {name: value} as a browser would submit them
    unchanged, and {name: type} for the inputs."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: str | None = None
        self._chosen = False
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._form = {"values": {}, "types": {}}
            self.forms.append(self._form)
        if self._form is None or (tag not in ("input", "select", "option", "textarea")):
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            self._form["types"][a["name"]] = kind
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form["values"][a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a.get("name")
            self._chosen = False
        elif tag == "option" and self._select:
            # As a browser does: the selected option, else the first.
            if "selected" in a or self._select not in self._form["values"]:
                if not self._chosen:
                    self._form["values"][self._select] = a.get("value", "")
                self._chosen = self._chosen or "selected" in a
        elif tag == "textarea":
            self._textarea = a.get("name")
            self._form["values"][self._textarea] = ""

    def handle_data(self, data):
        if self._form is not None and self._textarea:
            self._form["values"][self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_with(response, field: str) -> dict:
    """The page's form that holds `field`."""
    assert response.status_code in (200, 422), response.status_code
    parser = FormFields()
    parser.feed(response.content.decode())
    found = [f for f in parser.forms if field in f["types"] or field in f["values"]]
    assert found, f"no form with {field} on the page"
    return found[0]


def submitted(form: dict) -> dict:
    """What a browser posts for the form unchanged: a date, datetime-local or month input whose
    value is not ISO is sanitized to empty by the browser (the HTML value sanitization
    algorithm), so the form posts a blank date."""
    values = dict(form["values"])
    for name, kind in form["types"].items():
        if kind in ISO and not ISO[kind].match(values.get(name, "")):
            values[name] = ""
    return values


def assert_iso(form: dict, fields: dict[str, str]) -> None:
    """Each field is an input of the given type whose value is empty or ISO."""
    for name, kind in fields.items():
        assert form["types"].get(name) == kind, (name, form["types"].get(name))
        value = form["values"].get(name, "")
        assert value == "" or ISO[kind].match(value), (name, value)


@pytest.fixture
def as_user(client):
    def _as(user, language):
        user.language = language
        user.save(update_fields=["language"])
        client.force_login(user)
        session = client.session
        session["language"] = language
        session.save()
        return client

    return _as


@pytest.fixture
def dated_deal(rep):
    return make_deal(
        owner=rep,
        name="云帆 ERP",
        amount=120000,
        stage_key="proposal",
        expected_close_date=CLOSE,
        next_follow_up=FOLLOW_UP,
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_shows_the_deals_dates_as_iso_in_the_edit_form(as_user, rep, dated_deal, language):
    response = as_user(rep, language).get(reverse("deal_edit", args=[dated_deal.pk]))
    assert response.headers["Content-Language"] == language
    form = form_with(response, "expected_close_date")
    assert_iso(form, {"expected_close_date": "date", "next_follow_up": "datetime-local"})
    # The follow-up in the user's time zone (Asia/Shanghai), not in UTC.
    assert form["values"]["expected_close_date"] == "2027-03-20"
    assert form["values"]["next_follow_up"] == "2027-03-18T10:30"


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_keeps_every_date_when_only_the_name_changes(as_user, rep, dated_deal, language):
    # The deal is in a stage that requires the expected close date: a blank one is refused.
    client = as_user(rep, language)
    url = reverse("deal_edit", args=[dated_deal.pk])
    data = submitted(form_with(client.get(url), "expected_close_date"))
    response = client.post(url, data | {"name": "云帆 ERP 二期"})
    assert response.status_code == 302, response.context["form"].errors
    deal = Deal.objects.get(pk=dated_deal.pk)
    assert deal.name == "云帆 ERP 二期"
    assert deal.expected_close_date == CLOSE
    assert deal.next_follow_up == FOLLOW_UP


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_keeps_a_follow_up_with_seconds_through_a_save(as_user, rep, dated_deal, language):
    # An API or import may set a follow-up to the second; saving the form must not round it.
    precise = dt.datetime(2027, 3, 18, 10, 30, 45, 250000, tzinfo=SHANGHAI)
    Deal.objects.filter(pk=dated_deal.pk).update(next_follow_up=precise)
    client = as_user(rep, language)
    url = reverse("deal_edit", args=[dated_deal.pk])
    data = submitted(form_with(client.get(url), "next_follow_up"))
    assert data["next_follow_up"] == "2027-03-18T10:30:45.250"
    assert client.post(url, data).status_code == 302
    assert Deal.objects.get(pk=dated_deal.pk).next_follow_up == precise


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_reads_a_changed_date_and_follow_up_in_the_users_time_zone(
    as_user, rep, dated_deal, language
):
    client = as_user(rep, language)
    url = reverse("deal_edit", args=[dated_deal.pk])
    data = submitted(form_with(client.get(url), "expected_close_date"))
    data |= {"expected_close_date": "2027-04-30", "next_follow_up": "2027-04-01T09:15"}
    assert client.post(url, data).status_code == 302
    deal = Deal.objects.get(pk=dated_deal.pk)
    assert deal.expected_close_date == dt.date(2027, 4, 30)
    assert deal.next_follow_up == dt.datetime(2027, 4, 1, 9, 15, tzinfo=SHANGHAI)
    # And shown back exactly as entered: no 8-hour drift.
    again = form_with(client.get(url), "next_follow_up")["values"]
    assert again["next_follow_up"] == "2027-04-01T09:15"


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_logs_a_follow_up_in_the_users_time_zone(as_user, rep, dated_deal, language):
    client = as_user(rep, language)
    page = client.get(reverse("deal_detail", args=[dated_deal.pk]))
    form = form_with(page, "next_follow_up")
    assert_iso(form, {"next_follow_up": "datetime-local"})
    data = submitted(form) | {"next_follow_up": "2027-05-06T14:00", "notes": "回访"}
    response = client.post(reverse("deal_log_activity", args=[dated_deal.pk]), data)
    assert response.status_code == 302
    deal = Deal.objects.get(pk=dated_deal.pk)
    assert deal.next_follow_up == dt.datetime(2027, 5, 6, 14, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_converts_a_lead_with_an_iso_close_date(as_user, rep, language):
    lead = LeadFactory(owner=rep, name="张伟", company="上海云帆科技", budget=Decimal("80000"))
    client = as_user(rep, language)
    url = reverse("lead_convert", args=[lead.pk])
    form = form_with(client.get(url), "expected_close_date")
    assert_iso(form, {"expected_close_date": "date"})
    data = submitted(form) | {"deal_name": "云帆 CRM", "expected_close_date": "2027-03-20"}
    response = client.post(url, data)
    assert response.status_code == 302, response.context["form"].errors
    assert Deal.objects.get(lead=lead).expected_close_date == CLOSE


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("page", ["lead_list", "deal_list"])
def test_it_echoes_a_list_filters_dates_as_iso(as_user, rep, page, language):
    client = as_user(rep, language)
    query = {"created_from": "2026-03-01", "created_to": "2026-03-31"}
    form = form_with(client.get(reverse(page), query), "created_from")
    assert_iso(form, {"created_from": "date", "created_to": "date"})
    assert (form["values"]["created_from"], form["values"]["created_to"]) == (
        "2026-03-01",
        "2026-03-31",
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_reads_and_echoes_a_reports_period_as_iso(as_user, manager, language):
    client = as_user(manager, language)
    response = client.get(
        reverse("report", args=["funnel"]), {"date_from": "2026-03-01", "date_to": "2026-03-31"}
    )
    form = form_with(response, "date_from")
    assert_iso(form, {"date_from": "date", "date_to": "date"})
    assert (form["values"]["date_from"], form["values"]["date_to"]) == ("2026-03-01", "2026-03-31")
    filters = response.context["form"].cleaned_data
    assert (filters["date_from"], filters["date_to"]) == (dt.date(2026, 3, 1), dt.date(2026, 3, 31))


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_records_a_months_spend_from_the_month_input(as_user, admin_user, language):
    source = SourceFactory(name="百度广告")
    client = as_user(admin_user, language)
    url = reverse("settings_spend")
    form = form_with(client.get(url), "month")
    assert_iso(form, {"month": "month"})
    # A refused amount re-renders the form with the month as entered.
    refused = client.post(url, {"source": source.pk, "month": "2027-03", "amount": "-1"})
    assert refused.status_code == 422
    assert form_with(refused, "month")["values"]["month"] == "2027-03"
    client.post(url, {"source": source.pk, "month": "2027-03", "amount": "5000"})
    assert Spend.objects.get(source=source).month == dt.date(2027, 3, 1)


@pytest.mark.parametrize("language", LANGUAGES)
def test_it_formats_an_initial_date_and_month_as_iso(language):
    """A form given a date as its initial value (the edit forms) writes it ISO in any language."""
    from django.utils import translation

    class Probe(forms.Form):
        day = forms.DateField(widget=web_forms.DATE)
        at = forms.DateTimeField(widget=web_forms.DATETIME)
        month = forms.CharField(widget=web_forms.MONTH)

    with translation.override(language):
        html = Probe(
            initial={
                "day": CLOSE,
                "at": dt.datetime(2027, 3, 18, 2, 30, tzinfo=dt.UTC),
                "month": dt.date(2027, 3, 1),
            }
        ).as_p()
        bound = Probe({"day": "2027-03-20", "at": "2027-03-18T10:30", "month": "2027-03"})
        assert bound.is_valid(), bound.errors
    assert 'type="date" name="day" value="2027-03-20"' in html
    assert 'type="datetime-local" name="at" value="2027-03-18T10:30"' in html
    assert 'type="month" name="month" value="2027-03"' in html
    assert bound.cleaned_data["day"] == CLOSE
    assert bound.cleaned_data["at"] == dt.datetime(2027, 3, 18, 2, 30, tzinfo=dt.UTC)


def _date_fields():
    form_classes = [
        c
        for c in vars(web_forms).values()
        if isinstance(c, type) and issubclass(c, forms.Form) and c is not forms.Form
    ] + [ReportFilterForm]
    for form_class in form_classes:
        for name, field in form_class.base_fields.items():
            yield form_class.__name__, name, field


def test_it_uses_the_iso_widgets_for_every_date_field():
    """One widget per kind: a date field with Django's default (localized) widget would bring
    the blank-date defect back."""
    seen = set()
    for form_name, name, field in _date_fields():
        if isinstance(field, forms.DateTimeField):
            assert isinstance(field.widget, web_forms.IsoDateTimeInput), (form_name, name)
        elif isinstance(field, forms.DateField):
            assert isinstance(field.widget, web_forms.IsoDateInput), (form_name, name)
        elif isinstance(field.widget, forms.DateInput):
            assert isinstance(field.widget, (web_forms.IsoDateInput, web_forms.IsoMonthInput))
        else:
            continue
        seen.add((form_name, name))
    assert {("DealForm", "expected_close_date"), ("SpendForm", "month")} <= seen


def test_it_stores_both_dates_of_the_fixture_deal(dated_deal):
    # Guard for the fixtures above: the dates the tests read back were really stored.
    stored = Deal.objects.get(pk=dated_deal.pk)
    assert (stored.expected_close_date, stored.next_follow_up) == (CLOSE, FOLLOW_UP)
