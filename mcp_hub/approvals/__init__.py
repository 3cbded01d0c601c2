"""Human approval of sensitive tool calls (issue 4): policy, durable pending actions, holding and collecting."""
