"""Serializers of the identity and membership API and the OpenAPI schema of its endpoints, one
module per area (``me``, ``members``, ``invitations``, ``api_keys``).

Each module holds an area's input and output serializers and, below them, one ``extend_schema``
per endpoint (summary, description, parameters, responses, examples) as a named constant that
the view applies in one line. What the areas share (choices, the ``org_id`` path parameter) is
in ``common``.
"""
