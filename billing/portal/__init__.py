"""The billing portal: server-rendered pages for people (sign-in, my credits, an org's billing,
the system overview). An entry point like ``billing.api``: each page validates its input, calls
the same services and selectors as the REST API, and renders a template from
``templates/portal/``. No business rule lives here."""
