using System;

namespace AlexNet.Aot.Tests;

/// <summary>The fixtures' input rule (shared/fixtures/torch/README.md), reproduced exactly.</summary>
public static class FixtureInputs
{
    /// <summary>input[i] = (h / 2^32 - 0.5) * 2 with h = ((i + seed * 1000003) * 2654435761) mod 2^32, in double, then float.</summary>
    public static float[] Hash(int count, long seed = 777)
    {
        var x = new float[count];
        for (long i = 0; i < count; i++)
        {
            ulong h = (ulong)((i + seed * 1000003L) * 2654435761L) % 4294967296UL;
            x[i] = (float)((h / 4294967296.0 - 0.5) * 2);
        }
        return x;
    }
}
