"""US state, district and territory names and their two-letter USPS codes."""

from __future__ import annotations

import re

__all__ = ["STATE_CODES", "state_code"]

STATE_CODES: dict[str, str] = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN",
    "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA",
    "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "District of Columbia": "DC", "Washington DC": "DC", "Washington, D.C.": "DC",
    "Puerto Rico": "PR", "Guam": "GU", "American Samoa": "AS",
    "Northern Mariana Islands": "MP", "Commonwealth of the Northern Mariana Islands": "MP",
    "Virgin Islands": "VI", "U.S. Virgin Islands": "VI", "Virgin Islands of the U.S.": "VI",
    "United States Virgin Islands": "VI", "United States Minor Outlying Islands": "UM",
}


def _key(name: str) -> str:
    # Exports differ in case, dots and spacing ("Virgin Islands of the U.S." vs "of the US").
    return re.sub(r"[\s,]+", " ", name.replace(".", "")).strip().casefold()


_BY_KEY = {_key(name): code for name, code in STATE_CODES.items()}
_CODES = frozenset(STATE_CODES.values())


def state_code(name: str) -> str:
    """The USPS code for a state name or code; an unknown name comes back trimmed, as given."""
    trimmed = name.strip()
    if trimmed.upper() in _CODES:
        return trimmed.upper()

    return _BY_KEY.get(_key(trimmed), trimmed)
