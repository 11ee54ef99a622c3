"""How MCP reaches the server: stdio (the client starts us) or Streamable HTTP (we listen).

Both serve the same ``MCPServer`` built by ``agentic_vault._server``; a transport
only frames messages, bounds what it holds, and says who the caller is.
"""
