"""The console's sections beside the model admins, as the sidebar and the dashboard list them.

Each page names its URL and the permission that shows it. Later sections (consent, audit)
add themselves with `register` from their own module's import in admin_ui.site, without
touching the pages already here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import reverse

from admin_ui.roles import VIEW_RESOURCES


@dataclass(frozen=True)
class Page:
    name: str
    url_name: str
    permission: str
    kwargs: dict[str, str] = field(default_factory=dict)

    def url(self) -> str:
        return reverse(self.url_name, kwargs=self.kwargs or None)


@dataclass
class Section:
    label: str  # also the CSS class of the sidebar block
    name: str
    pages: list[Page]


SECTIONS: list[Section] = [
    Section("fhir", "FHIR resources", [
        *(Page(f"{t}s", "admin:fhir_list", VIEW_RESOURCES, {"resource_type": t})
          for t in ("Patient", "Practitioner", "Encounter", "Observation", "Condition")),
        Page("All resource types", "admin:fhir_types", VIEW_RESOURCES),
    ]),
]


def register(section_label: str, section_name: str, page: Page) -> None:
    """Add a page to a section (made when first named)."""
    for section in SECTIONS:
        if section.label == section_label:
            section.pages.append(page)
            return
    SECTIONS.append(Section(section_label, section_name, [page]))


def app_list_entries(user) -> list[dict]:
    """The sections in the shape of Django's app list (admin/app_list.html)."""
    entries = []
    for section in SECTIONS:
        pages = [p for p in section.pages if user.has_perm(p.permission)]
        if not pages:
            continue
        entries.append({
            "name": section.name,
            "app_label": section.label,
            "app_url": pages[0].url(),
            "has_module_perms": True,
            "models": [
                {"name": p.name, "object_name": p.name, "admin_url": p.url(), "add_url": None,
                 "view_only": True, "perms": {"view": True}}
                for p in pages
            ],
        })
    return entries
