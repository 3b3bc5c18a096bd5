"""The console has no models of its own (it shows other apps'). This module exists so that
Django sends admin_ui its post_migrate signal, after which admin_ui.roles makes the groups."""
