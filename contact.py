"""The contact page and its form."""
from flask import Blueprint, render_template

bp = Blueprint("contact", __name__)


@bp.get("/contact")
def form():
    """Show the office's contact details and the call-back form."""
    return render_template("contact.html")
