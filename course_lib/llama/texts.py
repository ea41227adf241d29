"""A text the course ships, written for it (public domain), for measuring perplexity offline in lesson 10.

Lesson: notebooks/10_capstone.ipynb. Tests: tests/test_llama.py.
"""

LIGHTHOUSE = """\
The lighthouse on the northern cape had been dark for eleven years when Mara Lindqvist climbed its stairs for the \
first time. She counted them out of habit, as her grandfather had taught her: one hundred and twelve steps, worn in \
the middle by the boots of the keepers who had come before. At the top the lamp room smelled of salt and old brass. \
The great lens was still there, dusty but whole, its prisms catching the grey afternoon light and throwing small \
rainbows across the floor.

Her grandfather had kept this light for thirty years. Every evening at dusk he had wound the clockwork that turned \
the lens, trimmed the wick, and written three lines in the log: the weather, the ships he had seen, and one thing he \
had noticed that day. The log books were in a wooden chest under the window. Mara opened the last one and read his \
final entry. "Wind from the west, strong. Two fishing boats and a ferry. The swallows have come back to the eaves."

The town below had grown since then. A new harbour wall ran out into the bay, and the ferries now carried satellite \
receivers that told them, to the metre, where the rocks were. Nobody needed a lighthouse any more. The council had \
voted to sell the building, and Mara had come to empty it before the sale.

She worked through the afternoon, wrapping the log books in paper and carrying them down the stairs, one hundred and \
twelve steps each way. By the time she had finished, the sun was setting behind the islands and the wind had turned \
to the west. She climbed the stairs one last time. On an impulse she found the winding handle, fitted it to the \
clockwork, and turned it until the weights rose. Then she struck a match.

The old wick caught on the third try. Slowly, with a sound like a long breath, the lens began to turn, and a beam of \
light swept out across the darkening water, over the harbour wall and the ferries and the fishing boats coming home. \
Down in the town, people stopped in the street and looked up. Some of them were old enough to remember.

Mara sat on the floor of the lamp room and opened a new log book. She wrote three lines. "Wind from the west, strong. \
Two fishing boats and a ferry. The light is on again."
"""
