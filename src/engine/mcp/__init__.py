"""Operations as tools for AI agents: an MCP server at ``/mcp`` with per-user custody (issue 24).

``server`` (the SDK's server and transport, mounted by ``mount``), ``auth`` (Tether as an OAuth 2.1 resource
server: who the MCP user is), ``tools`` (each operation of the user's integrations), ``calls`` (a tool call is a
run), ``resources`` (integrations and recent runs).
"""
