"""The application shell: the command line, the archive page, the local stack (``up``),
serving the deployments (``serve``, with the recovery sweep) and the demo.  Thin: the rules
live in the domains below."""
