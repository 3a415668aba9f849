"""Serializers of the billing API and the OpenAPI schema of its endpoints, one module per area.

Each module holds an area's input and output serializers and, below them, one ``extend_schema``
per endpoint (summary, description, parameters, responses, examples) as a named constant that
the view applies in one line. Fields shared by the areas are in ``fields``; example payloads
shared by several areas in ``examples``.
"""
