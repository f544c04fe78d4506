"""The one round core, run by the backend and by the simulation alike.

A round scores every superpixel nobody has been asked about, chooses the round's queries
(correction queries and audits of automatic corrections), and, once they are answered, runs
the automatic correctors (LCM, PLAR) behind their audits and trains the next round's model.
It reads and writes the images of a round through :class:`~alc_backend.rounds.images.RoundImages`,
which the backend's workspace and the simulation's store each implement, and takes its
settings from one :class:`~alc_backend.rounds.settings.RoundSettings`.
"""
