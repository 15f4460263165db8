"""Local stand-ins for the outside services Planter talks to (GitHub, the AI service)."""
