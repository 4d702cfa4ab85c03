"""English pages with ISO dates (see `portal.formats`): lists, record pages, history,
confirmation pages and emails all write 2026-11-27 and 2026-11-27 14:05. What is not
set here (input formats, separators) is Django's English."""

DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
DATETIME_FORMAT = "Y-m-d H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
FIRST_DAY_OF_WEEK = 1  # Monday
