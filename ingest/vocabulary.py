"""Word lists and weights for the demo data generator (all written for this project)."""

from __future__ import annotations

__all__ = [
    "ASSIGNEES",
    "COMPANY_KINDS",
    "COMPANY_PLACES",
    "FINANCIAL_KINDS",
    "FINANCIAL_TRADES",
    "OTHER_TRADES",
    "STATE_POPULATION",
    "VIOLATION_TYPES",
]

COMPANY_PLACES: tuple[str, ...] = (
    "Northwind", "Harbor Point", "Summit", "Cedar Lane", "Lakeshore", "Pioneer", "Liberty",
    "Granite", "Redwood", "Silver Creek", "Bluewater", "Ironwood", "Prairie", "Old Mill",
    "Riverbend", "Eastgate", "Westfield", "Oak Hollow", "Beacon", "Keystone", "Frontier",
    "Magnolia", "Sterling", "Evergreen", "Highland", "Copper Valley", "Bayview", "Maple Ridge",
    "Clearwater", "Stonebridge", "Golden Gate", "Heartland", "Atlantic", "Pacific Crest",
    "Mesa Verde", "Blue Ridge", "Twin Rivers", "Sunrise", "Foxhall", "Windmill", "Lighthouse",
    "Red Rock", "Pine Bluff", "Meridian", "Crescent", "Union Square", "Hudson", "Cascade",
    "Canyon", "Lone Star", "Great Plains", "Sandstone", "Willow Brook", "Aspen", "Tidewater",
    "Northgate", "Ridgeline", "Continental", "Commonwealth", "Seaboard",
)

# Trades that banks and other lenders are named for; only they get the bank-like endings.
FINANCIAL_TRADES: tuple[str, ...] = (
    "Savings", "Trust", "Capital", "Mortgage", "Securities", "Insurance", "Credit", "Lending",
    "Payments", "Auto Finance", "Credit Reporting", "Debt Recovery", "Student Loan",
    "Wealth Management", "Brokerage", "Card Services", "Consumer Finance", "Home Loans",
)

OTHER_TRADES: tuple[str, ...] = (
    "Energy", "Chemicals", "Logistics", "Health", "Pharmaceuticals", "Telecom", "Freight",
    "Mining", "Construction", "Foods", "Airlines", "Rail", "Pipeline", "Utilities", "Steel",
    "Medical Supply", "Home Health", "Staffing", "Waste Services", "Refining", "Trucking",
    "Poultry", "Dairy", "Shipping",
)

# How a name ends; those with dots or commas make two spellings of one company.
FINANCIAL_KINDS: tuple[str, ...] = ("Bank", "Bank, N.A.", "Federal Credit Union")
COMPANY_KINDS: tuple[str, ...] = (
    "Inc.", "LLC", "Corp.", "Company", "Group", "Holdings, Inc.", "Co.", "Partners, L.P.",
    "Services",
)

# (name, relative weight). Weights loosely follow the real files: credit reporting issues
# dominate CFPB complaints, safety and employment dominate Violation Tracker penalties.
VIOLATION_TYPES: tuple[tuple[str, int], ...] = (
    ("Incorrect information on credit report", 120),
    ("Improper use of a consumer report", 60),
    ("Problem with a credit reporting investigation", 55),
    ("Attempts to collect debt not owed", 45),
    ("Communication tactics in debt collection", 25),
    ("Loan modification or foreclosure problem", 22),
    ("Trouble during payment process", 20),
    ("Managing an account", 18),
    ("Unauthorized transactions", 15),
    ("Deceptive advertising or marketing", 15),
    ("Fees or interest charged improperly", 14),
    ("Struggling to pay mortgage", 10),
    ("Problem with fraud alerts or security freezes", 10),
    ("Fair lending violation", 8),
    ("Anti-money laundering", 12),
    ("Sanctions violation", 6),
    ("Securities fraud", 10),
    ("Insider trading", 4),
    ("Market manipulation", 5),
    ("Failure to supervise", 7),
    ("Recordkeeping violation", 6),
    ("Investor protection violation", 8),
    ("Bank Secrecy Act reporting failure", 6),
    ("Workplace safety violation", 40),
    ("Mine safety violation", 15),
    ("Aviation safety violation", 8),
    ("Railroad safety violation", 8),
    ("Motor carrier safety violation", 10),
    ("Wage and hour violation", 30),
    ("Employment discrimination", 20),
    ("Labor relations violation", 12),
    ("Benefit plan administrator violation", 9),
    ("Environmental violation", 25),
    ("Air pollution violation", 8),
    ("Water pollution violation", 7),
    ("Price-fixing or anti-competitive practices", 10),
    ("Healthcare fraud", 14),
    ("False Claims Act violation", 12),
    ("Government contracting fraud", 6),
    ("Privacy violation", 7),
    ("Export control violation", 4),
)

# Residents in thousands (2020 census, rounded): where people live is where alerts come from.
STATE_POPULATION: tuple[tuple[str, int], ...] = (
    ("CA", 39538), ("TX", 29146), ("FL", 21538), ("NY", 20201), ("PA", 13003), ("IL", 12813),
    ("OH", 11799), ("GA", 10712), ("NC", 10439), ("MI", 10077), ("NJ", 9289), ("VA", 8631),
    ("WA", 7705), ("AZ", 7152), ("MA", 7030), ("TN", 6911), ("IN", 6786), ("MD", 6177),
    ("MO", 6154), ("WI", 5894), ("CO", 5774), ("MN", 5706), ("SC", 5119), ("AL", 5024),
    ("LA", 4658), ("KY", 4506), ("OR", 4237), ("OK", 3959), ("CT", 3606), ("UT", 3272),
    ("IA", 3190), ("NV", 3105), ("AR", 3012), ("MS", 2961), ("KS", 2938), ("NM", 2118),
    ("NE", 1962), ("ID", 1839), ("WV", 1794), ("HI", 1455), ("NH", 1378), ("ME", 1362),
    ("RI", 1097), ("MT", 1084), ("DE", 990), ("SD", 887), ("ND", 779), ("AK", 733),
    ("DC", 690), ("VT", 643), ("WY", 577),
)

ASSIGNEES: tuple[str, ...] = (
    "a.nguyen", "b.okafor", "c.martinez", "d.kowalski", "e.lindqvist", "f.haddad",
    "g.tanaka", "h.oconnell", "i.petrov", "j.alvarez", "k.mensah", "l.schneider",
    "m.rossi", "n.patel", "o.dubois", "p.johansson", "q.chen", "r.abara",
)
