"""Use cases that cross domains, one named function each, called explicitly by the listeners,
the scheduler, the worker and the CLI: services change state, ``bot.posts`` tells people,
``bot.queue`` publishes after the commit."""
