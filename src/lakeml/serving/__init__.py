"""The prediction service: scores and live predictions over HTTP, without a JVM."""
