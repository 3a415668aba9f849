"""The OpenAI-compatible LLM gateway: reserve → forward → settle → attribute (DESIGN.md §7)."""
