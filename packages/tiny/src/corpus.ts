/** LLaVA-Mini's system prompt, verbatim (spec §4.3, `conv_llava_llama_3_1`). */
export const LLAVA_MINI_SYSTEM_PROMPT =
  'You are a helpful language and vision assistant. You are able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language.';

/**
 * The text the tiny tokenizer's merges are learned from. It is fixed: changing a single character
 * changes the vocabulary, and with it every token id the tests of other packages may have pinned.
 * It leans on the words the pipeline's prompts use (the system prompt, questions about images), so
 * those prompts tokenize into realistically few tokens and tests run on short sequences.
 */
export const TINY_CORPUS = [
  // Repeated so its words win the early merges: every pipeline prompt starts with it.
  ...Array<string>(6).fill(LLAVA_MINI_SYSTEM_PROMPT),
  'What is in this image? What is shown in the image? What is happening in this picture?',
  'Describe the image in detail. Describe this picture briefly. Describe what you see.',
  'What color is the car? What colour is the sky? What colors are the flowers in the garden?',
  'The car is red. The sky is blue. The grass is green and the sun is yellow. The cat is black and white.',
  'How many people are in the image? How many dogs are there? Count the birds on the wire.',
  'There are two people in the image. There are three dogs. I can count five birds and one cat.',
  'Where is the man standing? The man is standing next to the table, in front of a large window.',
  'What is the woman holding? She is holding a cup of coffee in her left hand and a phone in her right hand.',
  'Is there a person in this image? Yes, there is a person on the left side of the image.',
  'Is the dog sitting or running? The dog is running across the field toward the ball.',
  'What time of day is it? It looks like the evening, because the light is orange and the shadows are long.',
  'What is the weather like? It is a sunny day with a few white clouds in the sky.',
  'Read the text on the sign. The sign says "Stop" in white letters on a red background.',
  'What animal is this? This is a brown horse standing in a green field near a wooden fence.',
  'What are the children doing? The children are playing with a ball on the beach near the water.',
  'Can you explain what is happening in this video? A person walks into the kitchen and opens the fridge.',
  'What is on the table? There is a plate with bread, an apple, two oranges and a glass of water on the table.',
  'What is the main object in the picture? The main object is a bicycle leaning against a wall.',
  'Answer the question using a single word or phrase. Answer with the option letter from the given choices directly.',
  'Please provide a short description of the scene, and then answer the question about the visual content.',
  'The photo shows a city street at night with cars, buses, people walking and bright lights from the shops.',
  'Thank you! I hope this helps. Let me know if you have any other questions about the image.',
  "It's a small kitchen. They're sitting at the table. We've seen this before. I'm not sure. You'll see it. He'd like tea.",
  'Numbers: 1, 2, 3, 10, 42, 100, 2024, 336, 576, 1024 and 4096.',
].join('\n');
