"""People in the console: accounts, staff rights (groups and permissions), and each person's
FHIR identity (`fhirUser`: a Patient, Practitioner or RelatedPerson), chosen with a picker that
searches those resources. The link is checked by smart_auth.people, as `smart_user` checks it."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm
from django.contrib.auth.models import Group, User
from django.urls import reverse

from smart_auth.models import FhirUserLink
from smart_auth.people import PersonError, check_fhir_user


class FhirUserField(forms.CharField):
    widget = forms.TextInput(attrs={"list": "fhir-user-choices", "class": "fhir-user-picker", "autocomplete": "off",
                                    "placeholder": "type a name, or Patient/ID"})


class FhirUserLinkForm(forms.ModelForm):
    fhir_user = FhirUserField(label="FHIR user", required=True,
                              help_text="The Patient, Practitioner or RelatedPerson this person is (their fhirUser).")

    class Meta:
        model = FhirUserLink
        fields: list[str] = []

    class Media:
        js = ["admin_ui/picker.js"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["fhir_user"] = self.instance.reference
        self.fields["fhir_user"].widget.attrs["data-picker-url"] = reverse("admin:fhir_pick")

    def clean_fhir_user(self) -> str:
        value = self.cleaned_data["fhir_user"].strip()
        try:
            resource_type, logical_id = check_fhir_user(value)
        except PersonError as exc:
            raise forms.ValidationError(str(exc).removeprefix("--fhir-user ")) from None
        self.instance.resource_type, self.instance.logical_id = resource_type, logical_id
        return f"{resource_type}/{logical_id}"


class FhirUserInline(admin.StackedInline):
    model = FhirUserLink
    form = FhirUserLinkForm
    max_num = 1
    can_delete = True
    verbose_name = "FHIR identity (fhirUser)"
    verbose_name_plural = "FHIR identity (fhirUser)"


class PersonCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email", "is_staff", "groups")


class PersonAdmin(UserAdmin):
    add_form = PersonCreationForm
    inlines = [FhirUserInline]
    list_display = ["username", "fhir_user", "is_staff", "is_superuser", "is_active", "last_login"]
    list_select_related = ["fhir_user"]
    show_full_result_count = False
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "usable_password", "password1", "password2")}),
        ("Staff rights", {"fields": ("is_staff", "groups"),
                          "description": "Staff open this console; their groups say what they may do here."}),
    )

    # Rights are a superuser's to give: anyone else who may change people (App managers) sets
    # passwords, staff status and fhirUser, but cannot raise anyone's rights, their own
    # included, nor touch a superuser's account.
    RIGHTS = ["is_superuser", "groups", "user_permissions"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else fields + self.RIGHTS

    def has_change_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="FHIR user")
    def fhir_user(self, user: User) -> str:
        link = getattr(user, "fhir_user", None)
        return link.reference if link else ""


def register(site) -> None:
    for model, model_admin in ((User, PersonAdmin), (Group, GroupAdmin)):
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
