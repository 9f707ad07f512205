/** The model's folder (Hugging Face layout), for `LlavaMini.fromPretrained` or `--model`. */
export declare const modelDir: string;
