"""Run coremltools' own MIL op tests with our Core ML reference interpreter as the prediction backend."""
