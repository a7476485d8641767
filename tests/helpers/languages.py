"""Sentences in four languages for the language filter, written for these tests (never seen by
fastText's lid.176 training as such). The bundled lid.176.ftz labels every one of them with its
language at p >= 0.91 (measured: English 0.91-0.996, German 0.98-0.99, Spanish 0.94-0.97,
French 0.98-0.99), far above the filter's default threshold of 0.65."""

ENGLISH = [
    "The library on the corner of our street opens at nine every morning, and by ten the "
    "reading room is usually full of students preparing for their exams.",
    "When the rain finally stopped, we walked down to the harbour to watch the fishing boats "
    "come back in with the evening light on the water.",
    "My grandmother kept a small notebook in the kitchen drawer where she wrote down every "
    "recipe she had ever learned from her neighbours.",
    "The committee will meet again next Tuesday to decide whether the new bridge should be "
    "built before the end of the year.",
]
GERMAN = [
    "Die Bibliothek an der Ecke unserer Straße öffnet jeden Morgen um neun Uhr, und um zehn "
    "ist der Lesesaal meistens voller Studenten.",
    "Als der Regen endlich aufhörte, gingen wir zum Hafen hinunter, um die Fischerboote im "
    "Abendlicht zurückkehren zu sehen.",
]
SPANISH = [
    "La biblioteca de la esquina de nuestra calle abre a las nueve de la mañana, y a las diez "
    "la sala de lectura suele estar llena de estudiantes.",
    "Cuando por fin dejó de llover, bajamos al puerto para ver cómo volvían los barcos de "
    "pesca con la luz de la tarde sobre el agua.",
]
FRENCH = [
    "La bibliothèque au coin de notre rue ouvre tous les matins à neuf heures, et à dix heures "
    "la salle de lecture est souvent pleine d'étudiants.",
    "Quand la pluie s'est enfin arrêtée, nous sommes descendus au port pour regarder les "
    "bateaux de pêche rentrer dans la lumière du soir.",
]
# A document split over lines, as a .txt paragraph would be: the filter must join the lines
# (fastText predicts one line at a time and refuses a newline).
ENGLISH_LINES = "The train was late again.\nNobody on the platform seemed surprised by it."
