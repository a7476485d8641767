"""Export a trained checkpoint: Hugging Face Llama or plain safetensors."""
