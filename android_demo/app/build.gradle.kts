import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
    alias(libs.plugins.kotlin.compose)
}

android {
    namespace = "org.bitlite.demo"
    compileSdk = 35
    // r27 builds 16 KB-aligned libraries with ANDROID_SUPPORT_FLEXIBLE_PAGE_SIZES (below);
    // src/main/cpp/CMakeLists.txt also passes -z max-page-size=16384 itself.
    ndkVersion = "27.2.12479018"

    defaultConfig {
        applicationId = "org.bitlite.demo"
        minSdk = 28 // ImageDecoder
        targetSdk = 35
        versionCode = 1
        versionName = "0.2.0"
        // Phones (arm64-v8a), 32-bit Arm phones (armeabi-v7a, NEON), the emulator (x86_64).
        // LiteRT ships its libraries for the same ABIs.
        ndk { abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64") }
        externalNativeBuild {
            cmake {
                arguments += listOf("-DANDROID_SUPPORT_FLEXIBLE_PAGE_SIZES=ON")
            }
        }
    }

    // bitlite's delegate, compiled from the repository's runtime/src (see the CMakeLists.txt).
    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = "3.22.1"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            // Signed with the debug key so `assembleRelease` installs for latency measurements.
            signingConfig = signingConfigs.getByName("debug")
        }
    }

    buildFeatures {
        compose = true
    }

    // The interpreter memory-maps model.tflite straight from the APK: keep it uncompressed.
    androidResources {
        noCompress += "tflite"
    }

    // Native libraries stay uncompressed and 16 KB aligned inside the APK (AGP >= 8.5.1
    // aligns them; legacy packaging would compress and extract them instead).
    packaging {
        jniLibs { useLegacyPackaging = false }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

// Fail the build, not the app, when the exported model is missing. Whether the app can run
// it is decided on the phone from model.json (Compatibility.kt), with the reason on screen.
val checkModelAssets by tasks.registering {
    description = "Checks that the bundled model.tflite and model.json exist."
    val assets = file("src/main/assets")
    doLast {
        val missing = listOf("model.tflite", "model.json").map { assets.resolve(it) }.filterNot { it.isFile }
        if (missing.isNotEmpty()) {
            throw GradleException(
                "missing ${missing.joinToString { it.name }} in $assets: export a model first, from the " +
                    "bitlite root: python -m pipeline.export --android android_demo",
            )
        }
    }
}

tasks.named("preBuild") { dependsOn(checkModelAssets) }

dependencies {
    implementation(libs.litert)
    implementation(libs.litert.api)

    implementation(libs.androidx.core.ktx)
    implementation(libs.androidx.activity.compose)
    implementation(libs.androidx.lifecycle.viewmodel.compose)
    implementation(libs.androidx.lifecycle.runtime.compose)
    implementation(libs.kotlinx.coroutines.android)
    implementation(platform(libs.androidx.compose.bom))
    implementation(libs.androidx.compose.ui)
    implementation(libs.androidx.compose.ui.graphics)
    implementation(libs.androidx.compose.material3)
    debugImplementation(libs.androidx.compose.ui.tooling)

    testImplementation(libs.junit)
}
