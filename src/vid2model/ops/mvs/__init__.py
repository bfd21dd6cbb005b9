"""CPU-first multi-view stereo: view selection, plane sweep with NCC, filtering, fusion."""
