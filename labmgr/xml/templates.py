"""Render the Jinja2 templates shipped in ``network_templates/`` into parsed XML."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from lxml import etree

NAMESPACE = "urn:labmgr:lab:1"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("labmgr.network_templates", "."),
        autoescape=jinja2.select_autoescape(default=True),  # values are XML-escaped
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def render(template: str, **context: Any) -> etree._Element:
    """Render ``network_templates/<name>.xml.j2`` and parse it."""
    text = _environment().get_template(f"{template}.xml.j2").render(namespace=NAMESPACE, **context)
    return etree.fromstring(text.encode(), parser=etree.XMLParser(remove_blank_text=True))
