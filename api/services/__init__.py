"""Business rules, shared by the JSON API and the portal: controllers validate the request
shape, call a service and render its result."""
