"""Mail (issue 18): the messages Tessera sends (:mod:`.messages`), the SMTP client that sends them
(:mod:`.smtp`), the worker that sends them from the Redis queue (:mod:`.outbox`), and the local
mail catcher of ``tessera dev`` and the tests (:mod:`.catcher`)."""
