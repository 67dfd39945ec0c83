"""Country names as written in Topology Zoo files, mapped to ISO 3166-1 alpha-2 codes.

Jurisdiction rules in Tandem name ISO codes, while Topology Zoo writes English country names
("Czech Republic", "United States"). The table is data, kept here so that loading stays pure.
A name not in it maps to "" here; the loaders then record the site's country as
`jurisdiction.UNKNOWN`, which no residency or transit rule admits, and warn.

Every code goes through `jurisdiction.normalise`, so the aliases "UK" and "EL" give GB and GR
wherever a code is read (a `Country` field, an SNDlib ".uk" suffix, a GÉANT label).
"""

from __future__ import annotations

import re

from ..jurisdiction import normalise

# "CODE:Name|Alias|Alias" — one country per entry.
_TABLE = """
AD:Andorra AE:United Arab Emirates|UAE AF:Afghanistan AG:Antigua and Barbuda AL:Albania
AM:Armenia AO:Angola AR:Argentina AT:Austria AU:Australia AZ:Azerbaijan
BA:Bosnia and Herzegovina|Bosnia|Bosnia-Herzegovina BB:Barbados BD:Bangladesh BE:Belgium
BF:Burkina Faso BG:Bulgaria BH:Bahrain BI:Burundi BJ:Benin BM:Bermuda BN:Brunei
BO:Bolivia BR:Brazil BS:Bahamas|The Bahamas BT:Bhutan BW:Botswana BY:Belarus BZ:Belize
CA:Canada CD:Democratic Republic of the Congo|DR Congo|Congo-Kinshasa
CF:Central African Republic CG:Republic of the Congo|Congo|Congo-Brazzaville
CH:Switzerland CI:Ivory Coast|Cote d'Ivoire|Côte d'Ivoire CL:Chile CM:Cameroon CN:China
CO:Colombia CR:Costa Rica CU:Cuba CV:Cape Verde|Cabo Verde CY:Cyprus
CZ:Czech Republic|Czechia DE:Germany DJ:Djibouti DK:Denmark DM:Dominica
DO:Dominican Republic DZ:Algeria EC:Ecuador EE:Estonia EG:Egypt ER:Eritrea ES:Spain
ET:Ethiopia FI:Finland FJ:Fiji FO:Faroe Islands FR:France GA:Gabon
GB:United Kingdom|UK|Great Britain|England|Scotland|Wales|Northern Ireland
GD:Grenada GE:Georgia GG:Guernsey GH:Ghana GI:Gibraltar GL:Greenland GM:Gambia|The Gambia
GN:Guinea GQ:Equatorial Guinea GR:Greece GT:Guatemala GU:Guam GW:Guinea-Bissau GY:Guyana
HK:Hong Kong HN:Honduras HR:Croatia HT:Haiti HU:Hungary ID:Indonesia IE:Ireland IL:Israel
IM:Isle of Man IN:India IQ:Iraq IR:Iran IS:Iceland IT:Italy JE:Jersey JM:Jamaica JO:Jordan
JP:Japan KE:Kenya KG:Kyrgyzstan KH:Cambodia KM:Comoros KN:Saint Kitts and Nevis
KP:North Korea KR:South Korea|Korea|Republic of Korea KW:Kuwait KY:Cayman Islands
KZ:Kazakhstan LA:Laos LB:Lebanon LC:Saint Lucia LI:Liechtenstein LK:Sri Lanka LR:Liberia
LS:Lesotho LT:Lithuania LU:Luxembourg LV:Latvia LY:Libya MA:Morocco MC:Monaco
MD:Moldova|Republic of Moldova ME:Montenegro MG:Madagascar
MK:North Macedonia|Macedonia|FYROM ML:Mali MM:Myanmar|Burma MN:Mongolia MO:Macau|Macao
MR:Mauritania MT:Malta MU:Mauritius MV:Maldives MW:Malawi MX:Mexico MY:Malaysia
MZ:Mozambique NA:Namibia NC:New Caledonia NE:Niger NG:Nigeria NI:Nicaragua
NL:Netherlands|The Netherlands|Holland NO:Norway NP:Nepal NZ:New Zealand OM:Oman PA:Panama
PE:Peru PF:French Polynesia PG:Papua New Guinea PH:Philippines PK:Pakistan PL:Poland
PR:Puerto Rico PS:Palestine PT:Portugal PY:Paraguay QA:Qatar RE:Reunion|Réunion
RO:Romania RS:Serbia RU:Russia|Russian Federation RW:Rwanda SA:Saudi Arabia
SB:Solomon Islands SC:Seychelles SD:Sudan SE:Sweden SG:Singapore SI:Slovenia SK:Slovakia
SL:Sierra Leone SM:San Marino SN:Senegal SO:Somalia SR:Suriname SS:South Sudan
SV:El Salvador SY:Syria SZ:Eswatini|Swaziland TD:Chad TG:Togo TH:Thailand TJ:Tajikistan
TL:East Timor|Timor-Leste TM:Turkmenistan TN:Tunisia TO:Tonga TR:Turkey|Türkiye
TT:Trinidad and Tobago TW:Taiwan TZ:Tanzania UA:Ukraine UG:Uganda
US:United States|USA|United States of America|US UY:Uruguay UZ:Uzbekistan VA:Vatican City|Holy See
VC:Saint Vincent and the Grenadines VE:Venezuela VG:British Virgin Islands
VI:US Virgin Islands|United States Virgin Islands VN:Vietnam|Viet Nam VU:Vanuatu WS:Samoa
XK:Kosovo YE:Yemen ZA:South Africa ZM:Zambia ZW:Zimbabwe
"""


def _build() -> tuple[dict[str, str], frozenset[str]]:
    by_name: dict[str, str] = {}
    codes: set[str] = set()
    # Entries are separated by whitespace before "XX:"; names may contain spaces.
    for m in re.finditer(r"([A-Z]{2}):(.*?)(?=\s+[A-Z]{2}:|\s*$)", _TABLE.strip(), re.S):
        code = m.group(1)
        codes.add(code)
        for name in m.group(2).split("|"):
            by_name[" ".join(name.split()).casefold()] = code
    return by_name, frozenset(codes)


_BY_NAME, ISO_CODES = _build()


def country_code(text: str) -> str:
    """ISO alpha-2 code for a country name or code ("Czech Republic", "cz", "UK"), else ""."""
    t = " ".join(text.split())
    if not t:
        return ""
    if len(t) == 2:
        code = normalise(t)
        if code in ISO_CODES:
            return code
    return _BY_NAME.get(t.casefold(), "")


def is_code(text: str) -> bool:
    """True when `text` is written as a two-letter country code ("IE", "UK", "SL")."""
    t = text.strip()
    return len(t) == 2 and t.isalpha() and t.isascii() and normalise(t) in ISO_CODES


def country_from_place(text: str) -> str:
    """Country of a place written "City, Country" (or a bare country name or code), else ""."""
    whole = country_code(text)
    if whole:
        return whole
    if "," in text:
        return country_code(text.rsplit(",", 1)[1])
    return ""


# Capital (lat, lon) per country, used only to *estimate* a link's latency when the file has
# no coordinates but does name both endpoints' countries (GÉANT's yEd source labels each PoP
# by country). Site coordinates are never filled from this table.
CAPITALS: dict[str, tuple[float, float]] = {
    "IS": (64.15, -21.94), "IE": (53.35, -6.26), "GB": (51.51, -0.13), "NO": (59.91, 10.75),
    "SE": (59.33, 18.07), "FI": (60.17, 24.94), "EE": (59.44, 24.75), "LV": (56.95, 24.11),
    "LT": (54.69, 25.28), "RU": (55.76, 37.62), "DK": (55.68, 12.57), "PL": (52.23, 21.01),
    "NL": (52.37, 4.90), "BE": (50.85, 4.35), "LU": (49.61, 6.13), "FR": (48.86, 2.35),
    "DE": (52.52, 13.40), "CZ": (50.08, 14.44), "CH": (46.95, 7.45), "IT": (41.90, 12.50),
    "ES": (40.42, -3.70), "PT": (38.72, -9.14), "SK": (48.15, 17.11), "HU": (47.50, 19.04),
    "AT": (48.21, 16.37), "SI": (46.06, 14.51), "HR": (45.81, 15.98), "RS": (44.79, 20.45),
    "ME": (42.44, 19.26), "MK": (42.00, 21.43), "BG": (42.70, 23.32), "RO": (44.43, 26.10),
    "TR": (39.93, 32.86), "GR": (37.98, 23.73), "CY": (35.17, 33.36), "IL": (31.77, 35.21),
    "MT": (35.90, 14.51), "BY": (53.90, 27.56), "UA": (50.45, 30.52), "MD": (47.01, 28.86),
    "BA": (43.86, 18.41), "AL": (41.33, 19.82), "XK": (42.66, 21.17), "LI": (47.14, 9.52),
    "MC": (43.74, 7.42), "AD": (42.51, 1.52), "SM": (43.94, 12.45), "GE": (41.72, 44.79),
    "AM": (40.18, 44.51), "AZ": (40.41, 49.87), "US": (38.90, -77.04), "CA": (45.42, -75.70),
    "JP": (35.68, 139.69), "CN": (39.90, 116.40), "IN": (28.61, 77.21), "BR": (-15.79, -47.88),
    "AU": (-35.28, 149.13), "ZA": (-25.75, 28.19), "SG": (1.35, 103.82), "HK": (22.32, 114.17),
}
