"""Word lists for a South African school district that looks real enough to read in a demo."""

from __future__ import annotations

# (province, [(town, suburb, district, district_code)]) — district names are those of the
# provincial education departments.
PLACES: list[tuple[str, list[tuple[str, str, str, str]]]] = [
    ("Gauteng", [
        ("Pretoria", "Lynnwood", "Tshwane South", "GT-TS"),
        ("Johannesburg", "Parktown", "Johannesburg East", "GT-JE"),
        ("Soweto", "Orlando West", "Johannesburg Central", "GT-JC"),
        ("Centurion", "Lyttelton", "Tshwane South", "GT-TS"),
        ("Benoni", "Rynfield", "Ekurhuleni North", "GT-EN"),
        ("Vereeniging", "Three Rivers", "Sedibeng West", "GT-SW"),
    ]),
    ("Western Cape", [
        ("Cape Town", "Rondebosch", "Metro Central", "WC-MC"),
        ("Stellenbosch", "Die Boord", "Cape Winelands", "WC-CW"),
        ("George", "Heatherlands", "Eden and Central Karoo", "WC-EC"),
        ("Paarl", "Courtrai", "Cape Winelands", "WC-CW"),
        ("Khayelitsha", "Site C", "Metro East", "WC-ME"),
    ]),
    ("KwaZulu-Natal", [
        ("Durban", "Morningside", "Umlazi", "KZ-UM"),
        ("Pietermaritzburg", "Scottsville", "Umgungundlovu", "KZ-UG"),
        ("Ballito", "Salt Rock", "Ilembe", "KZ-IL"),
        ("Newcastle", "Aviary Hill", "Amajuba", "KZ-AJ"),
    ]),
    ("Eastern Cape", [
        ("Gqeberha", "Walmer", "Nelson Mandela Bay", "EC-NM"),
        ("East London", "Vincent", "Buffalo City", "EC-BC"),
        ("Makhanda", "Somerset Heights", "Sarah Baartman", "EC-SB"),
        ("Mthatha", "Southernwood", "OR Tambo Coastal", "EC-OT"),
    ]),
    ("Free State", [
        ("Bloemfontein", "Universitas", "Motheo", "FS-MO"),
        ("Welkom", "Flamingo Park", "Lejweleputswa", "FS-LE"),
    ]),
    ("Limpopo", [
        ("Polokwane", "Bendor", "Capricorn South", "LP-CS"),
        ("Thohoyandou", "Block F", "Vhembe East", "LP-VE"),
    ]),
    ("Mpumalanga", [
        ("Mbombela", "Sonheuwel", "Ehlanzeni", "MP-EH"),
        ("eMalahleni", "Del Judor", "Nkangala", "MP-NK"),
    ]),
    ("North West", [
        ("Rustenburg", "Safari Gardens", "Bojanala", "NW-BO"),
        ("Potchefstroom", "Die Bult", "Dr Kenneth Kaunda", "NW-KK"),
    ]),
    ("Northern Cape", [
        ("Kimberley", "Belgravia", "Frances Baard", "NC-FB"),
        ("Upington", "Keidebees", "ZF Mgcawu", "NC-ZF"),
    ]),
]

SCHOOL_STEMS = [
    "Waterkloof", "Lynnwood Ridge", "Sunward Park", "Greenside", "Kingsmead", "Protea Heights",
    "Jacaranda", "Umhlanga Rocks", "Fairmont", "Rosebank", "Constantia", "Morningside",
    "Meerhof", "Bergvliet", "Oranje", "Kloofsig", "Eldoraigne", "Mondeor", "Fourways", "Westville",
    "Hillcrest", "Durbanville", "Somerset", "Rietondale", "Garsfontein", "Hoërskool Menlopark",
    "Sekolo sa Lefika", "Ikusasa", "Thuto-Lesedi", "Masakhane", "Vukuzenzele", "Lethabong",
    "Sinethemba", "Phumelela", "Kgolagano", "Zenzeleni", "Nkosinathi", "Tshwelopele",
]
SCHOOL_KINDS = [
    ("Primary School", "R", "7"), ("High School", "8", "12"), ("Laerskool", "R", "7"),
    ("Hoërskool", "8", "12"), ("Combined School", "R", "12"), ("Preparatory School", "000", "7"),
    ("College", "8", "12"), ("Academy", "R", "12"),
]

FIRST_NAMES_F = [
    "Thandiwe", "Naledi", "Lerato", "Zanele", "Ayanda", "Nomvula", "Palesa", "Lindiwe", "Refilwe",
    "Anika", "Liezl", "Chantelle", "Megan", "Jessica", "Amahle", "Karabo", "Nokuthula", "Busisiwe",
    "Mpho", "Annelie", "Fatima", "Aaliyah", "Precious", "Kgomotso", "Boitumelo", "Lwazi", "Sarah",
]
FIRST_NAMES_M = [
    "Sipho", "Thabo", "Bongani", "Kagiso", "Tshepo", "Mandla", "Sibusiso", "Lwandle", "Neo",
    "Pieter", "Johan", "Ruan", "Francois", "Dylan", "Liam", "Themba", "Luthando", "Siyabonga",
    "Mohammed", "Ethan", "Kamogelo", "Tumelo", "Andile", "Jabulani", "Hendrik", "Musa", "Junaid",
]
LAST_NAMES = [
    "Nkosi", "Dlamini", "Ndlovu", "Khumalo", "Mokoena", "Mahlangu", "Botha", "van der Merwe",
    "Naidoo", "Pillay", "Mthembu", "Zulu", "Sithole", "Mabaso", "Molefe", "Pretorius", "Venter",
    "Adams", "Jacobs", "Petersen", "Smith", "Coetzee", "Nel", "Steyn", "Govender", "Maseko",
    "Shabalala", "Tshabalala", "Radebe", "Baloyi", "Mathebula", "Fourie", "du Plessis", "Hendricks",
    "Mahlaba", "Ngcobo", "Cele", "Moloi", "Sibiya", "Kruger",
]
TITLES_F = ["Mrs", "Ms", "Dr"]
TITLES_M = ["Mr", "Mr", "Dr"]

COMMUNICATION_TYPES = [
    (1, "SMS"), (2, "E-mail"), (3, "Telephonic"), (4, "Letter"), (5, "In person"), (6, "WhatsApp"),
]
NOTE_TYPES = [(1, "Text note"), (2, "Promise to pay"), (3, "Internal note")]
TRANSACTION_TYPES = [
    (1, "General Journal"), (2, "Receipt"), (3, "Payment"), (4, "Deposit"), (5, "Invoice"),
    (6, "Credit Note"),
]
# Category names; ids are drawn per school from a sparse range (d6's are not contiguous).
CATEGORY_NAMES = [
    "School Fees", "Hostel Fees", "Aftercare", "Sport Levy", "Transport", "Stationery",
    "Tours and Excursions", "Uniform Shop", "Music Lessons", "Computer Levy",
]
NOTE_TEXTS = [
    "Called parent regarding outstanding school fees.",
    "Statement e-mailed; parent acknowledged receipt.",
    "Parent requested a payment arrangement until month end.",
    "Reminder SMS sent about arrears.",
    "Debit order returned unpaid; parent to pay by EFT.",
    "Discussed hostel fees with accountable person.",
    "Parent will settle the balance after bonus payment.",
    "Account handed to the bursar for follow-up.",
]
