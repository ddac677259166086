"""The words of the biography world (`biographies`): value pools and sentence templates.

Pools are built from hand-picked word parts, combined in every way, and a fixed pseudo-random subset
is kept: the order is a SHA-256 of each candidate, so the pools are identical on every machine and
every Python or NumPy version (no RNG stream to drift). Names and places look plausible without
being real, so a model cannot know them from anywhere but its training data.

Templates state the name and the attribute's type before the value, and end with the value and a
period: the value is the last thing a model predicts in a sentence, after everything that tells it
which fact is being asked for.
"""

from __future__ import annotations

import functools
import hashlib
import json


def _words(words: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(words.split(sep))


MONTHS = _words("January February March April May June July August September October November December")
DAYS = 28  # every month has days 1..28, so day, month and year are independent
YEARS = range(1900, 2101)

_FIRST_ONSETS = _words(
    "Al Am An Ar Bel Ben Bri Cal Car Cel Dal Dar Del El Em Fer Fin Gar Gil Hal Har Is Jan Jor Kal Kar Lau Len "
    "Lor Mar Mel Mir Nor Ol Pal Ros Sel Tam Val Ver Wil Zan "
)
_FIRST_ENDINGS = _words(
    "a an ana ara ea ela en ena er ette ia ian ie ina io is ius o on ora ric vin wyn ya den ton ley nor "
)
_LAST_PREFIXES = _words(
    "Ash Black Bright Brook Carr Cole Cross Dal Dun East Fair Fox Gold Green Hart Hay Hol Kings Lang Lind "
    "Marsh Mill Moor North Oak Pem Ray Red Rock Stan Stone Thorn Wal West White Wood Win Har Hale Mer Pen Ros "
    "Sher Tal Whit "
)
_LAST_SUFFIXES = _words(
    "berg bridge brook by combe dale den field ford gate ham hill hurst land ley man more ridge sby shaw son "
    "ston ter ton well wick wood worth "
)
_CITY_PREFIXES = _words(
    "Ald Amber Bay Bel Bran Cal Clear Cor Dray Elm Fal Glen Gran Hal Haver Iron Kel Lake Lin Mar Mead Mill "
    "New Nor Oak Pine Port Quin Raven River Sal Silver Spring Sun Tor Vale Wes Wil Wind York "
)
_CITY_SUFFIXES = _words(
    "bury by castle chester dale field ford gate haven holm mouth point port stead ton ville wick bridge burg "
    "crest fall hollow mont side "
)
_BRAND_ONSETS = _words("Ac Ax Bel Cor Dyn El Ev Flux Gen Hex In Kor Lum Mer Nov Om Pax Quan Sol Tri Ver Vex Zen Zor")
_BRAND_ENDINGS = _words("a ara ex ica ion is on ora tek tra ux yx")
_INDUSTRIES = _words(
    "Systems Labs Logistics Foods Dynamics Partners Holdings Energy Motors Pharmaceuticals Media Networks "
    "Capital Robotics Analytics Textiles Airlines Insurance Construction Software "
)
_UNIVERSITY_FORMS = ("{} University", "{} State University", "{} Institute of Technology", "{} College",
                     "{} Polytechnic Institute")  # fmt: skip
MAJORS = _words(
    "Accounting, Aerospace Engineering, Agriculture, Anthropology, Applied Mathematics, Archaeology, "
    "Architecture, Art History, Astronomy, Astrophysics, Biochemistry, Bioengineering, Biology, Biomedical "
    "Engineering, Biophysics, Botany, Business Administration, Chemical Engineering, Chemistry, Civil "
    "Engineering, Classics, Cognitive Science, Communication Studies, Comparative Literature, Computer "
    "Engineering, Computer Science, Construction Management, Creative Writing, Criminology, Dance, Data "
    "Science, Dentistry, Design, Drama, Earth Science, Ecology, Economics, Education, Electrical Engineering, "
    "English Literature, Entomology, Environmental Science, Epidemiology, Ethnic Studies, Film Studies, "
    "Finance, Fine Arts, Food Science, Forestry, French, Genetics, Geography, Geology, German, Graphic "
    "Design, Health Sciences, History, Hospitality Management, Industrial Design, Industrial Engineering, "
    "Information Systems, International Relations, Journalism, Kinesiology, Law, Linguistics, Management, "
    "Marine Biology, Marketing, Materials Science, Mathematics, Mechanical Engineering, Medicine, "
    "Meteorology, Microbiology, Molecular Biology, Music, Music Theory, Neuroscience, Nuclear Engineering, "
    "Nursing, Nutrition, Oceanography, Pharmacology, Philosophy, Photography, Physics, Political Science, "
    "Psychology, Public Health, Public Policy, Religious Studies, Robotics, Social Work, Sociology, Software "
    "Engineering, Spanish, Statistics, Theology, Urban Planning",
    sep=", ",
)

_TEMPLATE_TEXT = {  # one template a line, for each attribute in order
    "birth_date": """
        {name} was born on {value}.
        {name}'s birthday falls on {value}.
        {name} came into the world on {value}.
        {name}'s date of birth is {value}.
        The birth of {name} took place on {value}.
        Records show that {name} was born on {value}.
        {name} was welcomed into the world on {value}.
        According to the registry, {name}'s date of birth is {value}.
        {name} first saw the light of day on {value}.
        The date of {name}'s birth was {value}.
        {name} entered life on {value}.
        Family records list {name}'s birth date as {value}.
        {name}'s life began on {value}.
        {name} was born to proud parents on {value}.
        {name} arrived as a newborn on {value}.
        {name} has a birth date of {value}.
        The day {name} was born was {value}.
        {name}'s birth certificate is dated {value}.
        {name} was born in the early hours of {value}.
        The birthday of {name} is {value}.
        {name} drew a first breath on {value}.
        Official documents give {name}'s birth date as {value}.
        {name} was brought into this world on {value}.
        {name}'s day of birth was {value}.
        Hospital records note that {name} was born on {value}.
    """,
    "birth_city": """
        {name} was born in {value}.
        {name}'s birthplace is {value}.
        {name} came into the world in {value}.
        {name} was born and raised in {value}.
        The city where {name} was born is {value}.
        {name}'s place of birth is {value}.
        {name} first saw the light of day in {value}.
        {name} was born in the city of {value}.
        Records list {name}'s birthplace as {value}.
        {name}'s native city is {value}.
        {name} entered the world in {value}.
        The birth city of {name} is {value}.
        {name}'s life began in {value}.
        {name} was delivered in a hospital in {value}.
        {name} is a native of {value}.
        {name} was welcomed into the world in {value}.
        {name}'s birth took place in {value}.
        {name}'s birth certificate was issued in {value}.
        {name} spent the first days of life in {value}.
        According to the registry, {name} was born in {value}.
        {name} was born to a family living in {value}.
        {name}'s city of birth is {value}.
        {name} drew a first breath in {value}.
        {name} originally comes from the city of {value}.
        Hospital records show that {name} was born in {value}.
    """,
    "university": """
        {name} studied at {value}.
        {name} graduated from {value}.
        {name} received an education at {value}.
        {name}'s alma mater is {value}.
        {name} attended university at {value}.
        {name} completed a degree at {value}.
        {name} earned a diploma from {value}.
        {name} was a student at {value}.
        {name} spent college years at {value}.
        {name} enrolled as an undergraduate at {value}.
        {name}'s university was {value}.
        For higher education, {name} went to {value}.
        {name} pursued higher education at {value}.
        {name} is a graduate of {value}.
        The university {name} attended is {value}.
        {name} took classes at {value}.
        {name} earned a degree from {value}.
        {name} was admitted to study at {value}.
        {name}'s academic training took place at {value}.
        {name} holds a degree from {value}.
        {name} spent four years studying at {value}.
        {name} went to university at {value}.
        The school where {name} studied is {value}.
        {name} finished university studies at {value}.
        {name} matriculated at {value}.
    """,
    "major": """
        {name} majored in {value}.
        {name} studied the field of {value}.
        {name}'s major was {value}.
        {name} earned a degree in {value}.
        {name}'s field of study was {value}.
        {name} specialized in {value}.
        {name} chose to major in {value}.
        {name} completed coursework in {value}.
        {name} focused university studies on {value}.
        {name}'s academic major is {value}.
        {name} holds a bachelor's degree in {value}.
        The subject {name} studied was {value}.
        {name} graduated with a major in {value}.
        {name}'s area of study was {value}.
        {name} concentrated on the discipline of {value}.
        {name} received training in the field of {value}.
        {name} devoted college years to the study of {value}.
        The discipline {name} majored in is {value}.
        {name}'s degree is in {value}.
        {name} pursued a major in {value}.
        {name} read for a degree in {value}.
        {name}'s chosen major was {value}.
        {name} dedicated undergraduate studies to {value}.
        {name} earned academic credentials in {value}.
        {name}'s studies centered on the field of {value}.
    """,
    "company": """
        {name} works for {value}.
        {name} is employed by {value}.
        {name}'s employer is {value}.
        {name} has a job at {value}.
        {name} earns a living working at {value}.
        {name} is on the payroll of {value}.
        {name} works as a staff member at {value}.
        {name} holds a position at {value}.
        The company {name} works for is {value}.
        {name} is currently employed at {value}.
        {name} joined the staff of {value}.
        {name}'s workplace is {value}.
        {name} is a member of the team at {value}.
        {name} has a career at {value}.
        {name} draws a salary from {value}.
        {name} is on the staff at {value}.
        {name}'s current employer is {value}.
        {name} spends working days at {value}.
        {name} accepted a job offer from {value}.
        {name} works full time for {value}.
        The firm that employs {name} is {value}.
        {name} is an employee of {value}.
        {name} reports to work at {value}.
        {name} has been hired by {value}.
        {name} builds a career with {value}.
    """,
    "current_city": """
        {name} lives in {value}.
        {name} currently resides in {value}.
        {name}'s home is in {value}.
        {name} now makes a home in {value}.
        {name} has settled in {value}.
        {name}'s current city is {value}.
        {name} moved to and now lives in {value}.
        The city where {name} lives is {value}.
        {name} rents an apartment in {value}.
        {name} is a resident of {value}.
        {name}'s place of residence is {value}.
        {name} presently lives in the city of {value}.
        These days, {name} lives in {value}.
        {name}'s current address is in {value}.
        {name} owns a house in {value}.
        {name} relocated to {value}.
        {name} resides in the city of {value}.
        {name} spends everyday life in {value}.
        {name} is currently based in {value}.
        {name}'s city of residence is {value}.
        At present, {name} lives in {value}.
        {name} now calls home the city of {value}.
        {name} dwells in {value}.
        {name} has put down roots in {value}.
        {name} is registered as living in {value}.
    """,
}
ATTRIBUTES = tuple(_TEMPLATE_TEXT)
TEMPLATES: tuple[tuple[str, ...], ...] = tuple(
    tuple(line.strip() for line in block.strip().splitlines()) for block in _TEMPLATE_TEXT.values()
)


def _pick(candidates: list[str], n: int, salt: str) -> tuple[str, ...]:
    """n distinct candidates, a fixed pseudo-random choice (by hash), in alphabetical order."""
    distinct = sorted(set(candidates), key=lambda s: hashlib.sha256(f"{salt}:{s}".encode()).digest())
    if len(distinct) < n:
        raise AssertionError(f"pool {salt!r}: only {len(distinct)} candidates for {n} values")
    return tuple(sorted(distinct[:n]))


def _combine(prefixes: tuple[str, ...], suffixes: tuple[str, ...]) -> list[str]:
    return [p + s for p in prefixes for s in suffixes]


@functools.cache
def first_names() -> tuple[str, ...]:
    """900 first names, also used for middle names."""
    return _pick(_combine(_FIRST_ONSETS, _FIRST_ENDINGS), 900, "first")


@functools.cache
def last_names() -> tuple[str, ...]:
    return _pick(_combine(_LAST_PREFIXES, _LAST_SUFFIXES), 1000, "last")


@functools.cache
def cities() -> tuple[str, ...]:
    """800 cities: the pool of both the birth city and the current city."""
    return _pick(_combine(_CITY_PREFIXES, _CITY_SUFFIXES), 800, "city")


@functools.cache
def universities() -> tuple[str, ...]:
    return _pick([form.format(city) for city in cities() for form in _UNIVERSITY_FORMS], 200, "university")


def majors() -> tuple[str, ...]:
    return MAJORS


@functools.cache
def companies() -> tuple[str, ...]:
    brands = _combine(_BRAND_ONSETS, _BRAND_ENDINGS)
    return _pick([f"{brand} {industry}" for brand in brands for industry in _INDUSTRIES], 500, "company")


@functools.cache
def content_hash() -> str:
    """A digest of every pool and template: a tokenizer trained on older text is never reused."""
    content = [first_names(), last_names(), cities(), universities(), majors(), companies(), MONTHS, DAYS,
               [YEARS.start, YEARS.stop], TEMPLATES]  # fmt: skip
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()
