"""Model constants of the synthetic retailer.

All tunable numbers live here so the behaviour modules stay free of magic values.
Rates are calibrated so that scale 1 gives roughly 3.3k order lines per day summed
over web, app and store (~100k lines per 30 days).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# --- channels -----------------------------------------------------------------
ORDER_CHANNELS: tuple[str, ...] = ("web", "app", "store")
WEB, APP, STORE = 0, 1, 2

WEB_ORDERS = "web_orders"
APP_ORDERS = "app_orders"
POS_TRANSACTIONS = "pos_transactions"
CRM_TICKETS = "crm_tickets"
WEB_SESSIONS = "web_sessions"
LANDING_CHANNELS: tuple[str, ...] = (
    WEB_ORDERS,
    APP_ORDERS,
    POS_TRANSACTIONS,
    CRM_TICKETS,
    WEB_SESSIONS,
)
EXTENSIONS: dict[str, str] = {
    WEB_ORDERS: "jsonl",
    APP_ORDERS: "jsonl",
    POS_TRANSACTIONS: "csv",
    CRM_TICKETS: "csv",
    WEB_SESSIONS: "parquet",
}


# --- scale ---------------------------------------------------------------------
CUSTOMERS_PER_SCALE = 5000
PRODUCTS_PER_SQRT_SCALE = 400
STORES_PER_SQRT_SCALE = 12
MIN_CUSTOMERS = 50
MIN_PRODUCTS = 30
MIN_STORES = 3
GUESTS_PER_CUSTOMER = 0.3  # size of the pool of web guest identities

# --- catalogue -----------------------------------------------------------------
CATEGORIES: tuple[str, ...] = (
    "apparel",
    "footwear",
    "home",
    "beauty",
    "electronics",
    "sports",
    "toys",
    "grocery",
)
SUBCATEGORIES: dict[str, tuple[str, ...]] = {
    "apparel": ("Shirt", "Trousers", "Dress", "Jacket"),
    "footwear": ("Sneaker", "Boot", "Sandal"),
    "home": ("Mug", "Cushion", "Lamp", "Towel"),
    "beauty": ("Cream", "Lipstick", "Perfume"),
    "electronics": ("Headphones", "Charger", "Speaker"),
    "sports": ("Yoga Mat", "Backpack", "Bottle"),
    "toys": ("Puzzle", "Board Game", "Plush"),
    "grocery": ("Coffee", "Tea", "Chocolate"),
}
CATEGORY_CATALOGUE_SHARE: tuple[float, ...] = (0.22, 0.1, 0.15, 0.12, 0.08, 0.1, 0.08, 0.15)
CATEGORY_PRICE_MEDIAN: tuple[float, ...] = (35.0, 70.0, 25.0, 18.0, 60.0, 30.0, 22.0, 7.0)
PRICE_SIGMA = 0.45
PRODUCT_ADJECTIVES: tuple[str, ...] = (
    "Classic",
    "Urban",
    "Nordic",
    "Essential",
    "Premium",
    "Eco",
    "Vintage",
    "Sport",
)
ZIPF_EXPONENT = 1.0
NEW_PRODUCT_SHARE = 0.05  # launched during the generated period

# --- customers -----------------------------------------------------------------
COUNTRIES: tuple[str, ...] = ("DE", "AT", "NL", "FR", "GB", "US")
COUNTRY_SHARE: tuple[float, ...] = (0.62, 0.1, 0.08, 0.06, 0.08, 0.06)
COUNTRY_DIAL_CODE: tuple[str, ...] = ("49", "43", "31", "33", "44", "1")
STORE_COUNTRIES = ("DE", "AT")  # only customers there can shop in stores
COUNTRY_CURRENCY: tuple[str, ...] = ("EUR", "EUR", "EUR", "EUR", "GBP", "USD")
# EUR per unit of the currency, the same rates as `currency_rates_to_eur` in sources.yaml,
# so converting landed prices back to EUR recovers the shelf price (up to cent rounding)
RATE_TO_EUR: dict[str, float] = {"EUR": 1.0, "GBP": 1.17, "USD": 0.92}
MOBILE_PREFIXES: tuple[str, ...] = ("151", "152", "157", "160", "162", "170", "171", "176")
FIRST_NAMES: tuple[str, ...] = (
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hannah", "Ida", "Jonas",
    "Karl", "Lea", "Mia", "Noah", "Olivia", "Paul", "Rosa", "Sophie", "Tim", "Ute",
    "Lukas", "Marie", "Finn", "Laura", "Elias", "Julia", "Leon", "Sara", "Max", "Nina",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz",
    "Braun", "Zimmermann", "Krueger", "Hartmann", "Lange", "Werner", "Smith", "Martin",
    "Dubois", "Jansen", "Brown", "Taylor", "Novak", "Berger",
)  # fmt: skip
EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")
LOYALTY_SHARE = 0.92  # the rest never got a card: no app, anonymous in stores
PHONE_SHARE = 0.9
HOME_STORE_SHARE = 0.85  # store visits at the customer's usual store
PRE_PERIOD_SIGNUP_DAYS = 5 * 365
SIGNUP_PER_DAY = 0.003  # share of customers signing up per generated day
MAX_SIGNUP_SHARE = 0.25
DORMANCY_EXPOSURE = 0.08  # how much of the pre-period tenure counts towards lapsing
MAX_DORMANT_SHARE = 0.5
RATE_GAMMA_SHAPE = 2.0  # customer-level heterogeneity of the order rate
BASKET_GAMMA_SHAPE = 8.0
HAZARD_SIGMA = 0.3


@dataclass(frozen=True)
class Segment:
    """A latent customer segment; per-customer values scatter around these."""

    segment_id: int
    name: str
    description: str
    share: float
    order_rate: float  # orders per day over all channels before seasonality
    basket_mean: float  # mean order lines per order, complement add-ons included
    channel_mix: tuple[float, float, float]  # web, app, store
    lapse_hazard: float  # daily probability of lapsing with a healthy history
    promo_sensitivity: float  # extra relative order rate on promotion days
    session_rate: float  # browse sessions per day
    birth_years: tuple[int, int]
    device_mix: tuple[float, float, float]  # desktop, mobile, tablet
    contact_mix: tuple[float, float, float]  # phone, email, chat
    affinity: tuple[float, ...]  # category weights, aligned with CATEGORIES


SEGMENTS: tuple[Segment, ...] = (
    Segment(
        0, "loyal_high_value", "Frequent buyers with large baskets across web and app",
        share=0.12, order_rate=0.75, basket_mean=3.5, channel_mix=(0.45, 0.35, 0.2),
        lapse_hazard=0.0015, promo_sensitivity=0.1, session_rate=0.35,
        birth_years=(1965, 1990), device_mix=(0.55, 0.35, 0.1), contact_mix=(0.4, 0.45, 0.15),
        affinity=(1.3, 1.2, 1.2, 1.1, 1.3, 1.0, 0.8, 0.9),
    ),
    Segment(
        1, "bargain_hunters", "Promotion-driven web shoppers, many grocery and home items",
        share=0.22, order_rate=0.5, basket_mean=2.8, channel_mix=(0.6, 0.25, 0.15),
        lapse_hazard=0.004, promo_sensitivity=0.8, session_rate=0.3,
        birth_years=(1960, 2000), device_mix=(0.5, 0.4, 0.1), contact_mix=(0.3, 0.5, 0.2),
        affinity=(1.2, 0.9, 1.1, 1.0, 0.6, 0.8, 1.1, 1.5),
    ),
    Segment(
        2, "app_first_young", "Young mobile customers buying fashion and beauty in the app",
        share=0.2, order_rate=0.65, basket_mean=1.9, channel_mix=(0.1, 0.8, 0.1),
        lapse_hazard=0.005, promo_sensitivity=0.3, session_rate=0.25,
        birth_years=(1995, 2007), device_mix=(0.15, 0.8, 0.05), contact_mix=(0.1, 0.3, 0.6),
        affinity=(1.4, 1.3, 0.5, 1.3, 1.2, 1.1, 0.4, 0.8),
    ),
    Segment(
        3, "store_regulars", "Local customers shopping mostly in stores with their loyalty card",
        share=0.18, order_rate=0.55, basket_mean=2.6, channel_mix=(0.05, 0.1, 0.85),
        lapse_hazard=0.002, promo_sensitivity=0.15, session_rate=0.05,
        birth_years=(1950, 1985), device_mix=(0.6, 0.3, 0.1), contact_mix=(0.7, 0.25, 0.05),
        affinity=(0.9, 0.9, 1.3, 0.9, 0.7, 0.8, 1.2, 1.6),
    ),
    Segment(
        4, "occasional", "Rare buyers, mostly gifts; the profile also used for guests and cash",
        share=0.28, order_rate=0.12, basket_mean=1.6, channel_mix=(0.5, 0.1, 0.4),
        lapse_hazard=0.006, promo_sensitivity=0.2, session_rate=0.06,
        birth_years=(1950, 2005), device_mix=(0.5, 0.4, 0.1), contact_mix=(0.5, 0.4, 0.1),
        affinity=(1.0, 1.0, 1.0, 1.0, 1.1, 1.0, 1.3, 0.9),
    ),
)  # fmt: skip
ANONYMOUS_SEGMENT = 4  # guests and cash customers choose products like occasional buyers
AFFINITY_NOISE_SIGMA = 0.15

# --- personal preferences --------------------------------------------------------
SUBCATEGORY_NAMES: tuple[str, ...] = tuple(s for c in CATEGORIES for s in SUBCATEGORIES[c])
SUBCATEGORY_CATEGORY: tuple[int, ...] = tuple(
    k for k, c in enumerate(CATEGORIES) for _ in SUBCATEGORIES[c]
)
# Each customer's taste over subcategories is Dirichlet around their segment's category
# affinity with this total concentration: small values give a few clear favourites.
PREFERENCE_CONCENTRATION = 3.0
# consumables a customer keeps re-buying: a share of their drawn lines is one of their staples
STAPLE_SUBCATEGORIES: tuple[str, ...] = ("Coffee", "Tea", "Chocolate", "Cream", "Lipstick")
STAPLES_PER_CUSTOMER = 2
STAPLE_LINE_SHARE = 0.12
# buying a product brings its complement (one product of the paired subcategory) along
COMPLEMENT_SUBCATEGORY: dict[str, str] = {
    "Shirt": "Trousers", "Trousers": "Shirt", "Dress": "Sandal", "Jacket": "Boot",
    "Sneaker": "Backpack", "Boot": "Jacket", "Sandal": "Dress",
    "Mug": "Coffee", "Cushion": "Lamp", "Lamp": "Cushion", "Towel": "Cream",
    "Cream": "Perfume", "Lipstick": "Cream", "Perfume": "Lipstick",
    "Headphones": "Charger", "Charger": "Headphones", "Speaker": "Charger",
    "Yoga Mat": "Bottle", "Backpack": "Bottle", "Bottle": "Yoga Mat",
    "Puzzle": "Board Game", "Board Game": "Puzzle", "Plush": "Chocolate",
    "Coffee": "Mug", "Tea": "Mug", "Chocolate": "Tea",
}  # fmt: skip
COMPLEMENT_PROB = 0.25  # per drawn line; basket_mean counts these add-on lines

# --- ordering ------------------------------------------------------------------
# weekday multipliers Monday..Sunday per order channel (stores: Saturday peak, short Sunday)
WEEKLY: tuple[tuple[float, ...], ...] = (
    (0.97, 0.95, 0.95, 0.98, 1.03, 1.08, 1.04),
    (0.93, 0.92, 0.93, 0.97, 1.06, 1.1, 1.09),
    (0.9, 0.88, 0.92, 0.98, 1.12, 1.6, 0.6),
)
YEARLY_AMPLITUDE = 0.1
YEARLY_PEAK_DOY = 265  # smooth high in late September, low in late March
DECEMBER_PEAK = 0.6
DECEMBER_PEAK_DOY = 350
DECEMBER_PEAK_WIDTH = 10.0
GUEST_RATIO = 0.12  # guest web orders per expected CRM web order
ANON_POS_RATIO = 0.4  # anonymous store transactions per expected CRM store transaction
GUEST_BASKET = 1.6
ANON_POS_BASKET = 1.8
QTY_EXTRA = 0.2  # quantity per line = 1 + Poisson(QTY_EXTRA [+ promo])
QTY_EXTRA_PROMO = 0.35
PRICE_ELASTICITY = 2.0
SHIPPING_FEE = 4.99
FREE_SHIPPING_FROM = 50.0
POS_PAYMENT_KNOWN = (0.85, 0.05, 0.1)  # card, cash, voucher
POS_PAYMENT_ANONYMOUS = (0.3, 0.7, 0.0)
PAYMENTS: tuple[str, ...] = ("card", "cash", "voucher")
GUEST_CURRENCY_SHARE = (0.85, 0.1, 0.05)  # EUR, GBP, USD
CURRENCIES: tuple[str, ...] = ("EUR", "GBP", "USD")

# --- prices and promotions -------------------------------------------------------
PRICE_CHANGE_RATE = 1 / 45  # per product and day
PRICE_STEP_RANGE = (0.05, 0.15)
PROMO_START_PROB = 0.1  # per day without a running campaign
PROMO_LENGTH_RANGE = (2, 4)
PROMO_DISCOUNTS_PCT: tuple[int, ...] = (10, 15, 20, 25)
PROMO_MAX_CATEGORIES = 3
PROMO_BASE_LIFT = 0.08
# The promotion plan (landing/reference/promotion_plan.csv): every campaign is published
# this many days before it starts (at least the 28 days the demand forecast looks ahead),
# and the plan differs from what happens the way real plans do.
PLAN_LEAD_DAYS = (28, 42)
PLAN_UNANNOUNCED_PROB = 0.05  # a campaign that runs without ever being in the plan
PLAN_SHIFT_PROB = 0.1  # planned one day earlier or later than it runs
PLAN_DISCOUNT_CHANGE_PROB = 0.15  # planned with the next lower or higher discount
PLAN_CANCELLED_PROB = 0.1  # per gap of a week or more: a planned campaign called off
SEASON_WORDS: tuple[str, ...] = (
    "WINTER", "WINTER", "SPRING", "SPRING", "SPRING", "SUMMER",
    "SUMMER", "SUMMER", "AUTUMN", "AUTUMN", "AUTUMN", "WINTER",
)  # fmt: skip

# --- churn ----------------------------------------------------------------------
FREQ_DECAY = math.exp(-1 / 14)  # memory of the recent order frequency
UNHAPPY_DECAY = math.exp(-1 / 30)  # memory of bad service experiences
UNHAPPY_WEIGHT = 1.5  # relative hazard increase per (undecayed) bad ticket
LOW_FREQ_WEIGHT = 2.0  # relative hazard increase when recent frequency is zero
MAX_HAZARD = 0.5

# --- tickets ----------------------------------------------------------------------
TICKET_CATEGORIES: tuple[str, ...] = ("delivery", "return", "product", "billing", "account")
ACCOUNT = 4
CONTACT_CHANNELS: tuple[str, ...] = ("phone", "email", "chat")
TICKET_STATUSES: tuple[str, ...] = ("open", "pending", "resolved", "closed")
TICKET_STATUS_SHARE = (0.1, 0.1, 0.4, 0.4)
TICKET_PROB_PER_ORDER = (0.04, 0.03, 0.012)  # web, app, store
TICKET_CATEGORY_BY_CHANNEL: tuple[tuple[float, ...], ...] = (
    (0.45, 0.25, 0.15, 0.1, 0.05),
    (0.4, 0.25, 0.15, 0.1, 0.1),
    (0.0, 0.45, 0.4, 0.15, 0.0),
)
BAD_EXPERIENCE_PROB = (0.45, 0.35, 0.4, 0.3, 0.1)  # per ticket category
TICKET_MAX_LAG_DAYS = 7  # an order's ticket opens 0..6 days later
BASELINE_TICKET_RATE = 0.0008  # account questions per active customer and day
SATISFACTION_MISSING = 0.3
TICKET_CONTACT_IDS = (0.5, 0.3, 0.2)  # email only, phone only, both

# --- sessions --------------------------------------------------------------------
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
BROWSE_LOGGED_IN_SHARE = 0.55
LAPSED_SESSION_FACTOR = 0.1
ANON_SESSIONS_PER_CUSTOMER = 0.08
SECONDS_PER_PAGE = 35.0

# --- hours of day (UTC) ------------------------------------------------------------
HOURS_WEB: tuple[float, ...] = (
    1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5, 5.5, 5, 4.5, 4.5, 5, 5.5, 6.5, 7.5, 7.5, 6,
    4, 2,
)  # fmt: skip
HOURS_APP: tuple[float, ...] = (
    1.5, 0.8, 0.4, 0.3, 0.3, 0.8, 3, 5, 4, 3, 3, 4, 5, 4, 3, 3, 4, 5.5, 7, 8, 8.5, 7, 5, 3,
)  # fmt: skip
HOURS_TICKETS: tuple[float, ...] = (
    0, 0, 0, 0, 0, 0, 0.5, 3, 6, 7, 7, 6, 5, 6, 7, 6, 5, 3, 1, 0.5, 0, 0, 0, 0,
)  # fmt: skip
STORE_OPEN_LOCAL = (9, 20)  # Monday to Saturday, local time
STORE_OPEN_SUNDAY_LOCAL = (11, 17)

# --- faults -------------------------------------------------------------------------
FAULT_ROW_SHARE = 0.005
FUTURE_YEARS = 4
SCHEMA_DRIFT_RENAMES: dict[str, str] = {"quantity": "qty"}
SCHEMA_DRIFT_EXTRA = "appVersion"
APP_VERSIONS: tuple[str, ...] = ("5.2.0", "5.2.1", "5.3.0")
DRIFT_RATE_MULT: tuple[float, ...] = (0.8, 1.5, 1.3, 0.85, 1.0)  # per segment
DRIFT_BASKET_MULT = 1.25
DRIFT_CATEGORY_MULT = 3.0
DRIFT_PRICE_MULT = 1.08

# --- stores ----------------------------------------------------------------------------
STORE_CITIES: tuple[tuple[str, str, str], ...] = (
    ("Berlin", "Berlin", "DE"), ("Hamburg", "Hamburg", "DE"), ("Munich", "Bavaria", "DE"),
    ("Cologne", "North Rhine-Westphalia", "DE"), ("Frankfurt", "Hesse", "DE"),
    ("Stuttgart", "Baden-Wuerttemberg", "DE"), ("Duesseldorf", "North Rhine-Westphalia", "DE"),
    ("Leipzig", "Saxony", "DE"), ("Vienna", "Vienna", "AT"), ("Hanover", "Lower Saxony", "DE"),
    ("Nuremberg", "Bavaria", "DE"), ("Graz", "Styria", "AT"), ("Dresden", "Saxony", "DE"),
    ("Bremen", "Bremen", "DE"), ("Essen", "North Rhine-Westphalia", "DE"),
    ("Salzburg", "Salzburg", "AT"),
)  # fmt: skip
STORE_SIZE_SIGMA = 0.5
STORE_AGE_DAYS = (200, 5000)
PRODUCT_AGE_DAYS = (30, 1500)
