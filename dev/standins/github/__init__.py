"""A local GitHub: the REST subset Planter uses, over real git repositories served by smart HTTP."""
