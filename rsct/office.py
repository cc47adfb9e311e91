"""The office's contact facts, in one place for pages, emails and structured data."""

from urllib.parse import quote

NAME = "Recovery Services of Connecticut"
SHORT_NAME = "RSCT"
STREET = "71 Bradley Road, Suite 6"
CITY = "Madison"
REGION = "CT"
POSTAL_CODE = "06443"
PHONE = "(203) 421-6242"
PHONE_TEL = "+12034216242"
FAX = "(203) 421-6808"
FAX_TEL = "+12034216808"
TIME_ZONE = "America/New_York"
MAP_URL = "https://www.openstreetmap.org/search?query=" + quote(f"{STREET}, {CITY}, {REGION} {POSTAL_CODE}")


def structured_data(site_url: str, facebook_url: str = "") -> dict:
    """schema.org description of the clinic, for local search results."""
    data = {
        "@context": "https://schema.org",
        "@type": "MedicalClinic",
        "name": NAME,
        "alternateName": SHORT_NAME,
        "url": site_url + "/",
        "telephone": PHONE_TEL,
        "faxNumber": FAX_TEL,
        "address": {
            "@type": "PostalAddress",
            "streetAddress": STREET,
            "addressLocality": CITY,
            "addressRegion": REGION,
            "postalCode": POSTAL_CODE,
            "addressCountry": "US",
        },
    }
    if facebook_url:
        data["sameAs"] = [facebook_url]
    return data
