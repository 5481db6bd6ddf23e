@rem Gradle wrapper launcher for the bitlite Android demo (Windows).
@rem
@rem Runs gradle\wrapper\gradle-wrapper.jar, which downloads and runs the Gradle version named
@rem in gradle\wrapper\gradle-wrapper.properties. The repository cannot carry that jar (see
@rem README.md, "Gradle wrapper"); without it this says how to get it. `gradle wrapper`
@rem replaces this script, gradlew and the jar with Gradle's own.
@echo off
setlocal
set "APP_HOME=%~dp0"
set "JAR=%APP_HOME%gradle\wrapper\gradle-wrapper.jar"
if not exist "%JAR%" (
    echo error: %JAR% is missing: run "gradle wrapper" once in %APP_HOME% with any Gradle 8.9 or newer, or see README.md ^(Gradle wrapper^) 1>&2
    exit /b 2
)
set "JAVA_EXE=java.exe"
if defined JAVA_HOME set "JAVA_EXE=%JAVA_HOME%\bin\java.exe"
"%JAVA_EXE%" -Xmx64m -Xms64m %JAVA_OPTS% %GRADLE_OPTS% "-Dorg.gradle.appname=gradlew" -classpath "%JAR%" org.gradle.wrapper.GradleWrapperMain %*
exit /b %ERRORLEVEL%
